"""`create_api_client TENANT_SLUG NAME [--json]`: integrator credentials; the secret is shown this once only."""

import json

from django.core.management.base import BaseCommand

from tenants.inputs import clean_name
from tenants.services import api_client_create, tenant_get

from ._support import application_errors


class Command(BaseCommand):
    help = "Create an API client for a tenant and print its client id and secret (the secret is never shown again)."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("name", help="What the client is, e.g. 'Web shop checkout'.")
        parser.add_argument(
            "--json", action="store_true", help='Print one JSON object {"client_id", "client_secret", "tenant"} and nothing else.'
        )

    def handle(self, *args, tenant_slug, name, **options):
        with application_errors():
            tenant = tenant_get(slug=tenant_slug)
            issued = api_client_create(tenant=tenant, name=clean_name(name, of="API client"))
        if options["json"]:
            payload = {"client_id": issued.client.client_id, "client_secret": issued.secret, "tenant": tenant.slug}
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(self.style.SUCCESS(f"Created API client {issued.client.name!r} for tenant {tenant.slug!r}."))
        self.stdout.write(f"client_id:     {issued.client.client_id}")
        self.stdout.write(f"client_secret: {issued.secret}")
        self.stdout.write("Store the secret now: only its hash is kept, it cannot be shown again.")
