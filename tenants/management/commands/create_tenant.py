"""`create_tenant SLUG --name NAME --timezone TZ`: a new tenant, through tenants.services.tenant_create."""

from django.core.management.base import BaseCommand

from tenants.inputs import clean_name, clean_slug, clean_timezone
from tenants.services import tenant_create

from ._support import application_errors


class Command(BaseCommand):
    help = "Create a tenant (a business using the service)."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Short identifier: lower-case letters, digits, '-' and '_' (e.g. acme).")
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Ltd'.")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone of the tenant's staff (default UTC).")

    def handle(self, *args, slug, name, timezone, **options):
        with application_errors():
            tenant = tenant_create(
                slug=clean_slug(slug), name=clean_name(name, of="tenant"), timezone_name=clean_timezone(timezone)
            )
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug!r} ({tenant.name}, {tenant.timezone})."))
