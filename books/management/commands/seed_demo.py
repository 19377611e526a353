"""`seed_demo`: load the demo tenant, users, API client and books once (books.demo), and print the logins."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from books.demo import demo_seed
from tenants.management.commands._support import application_errors


class Command(BaseCommand):
    help = "Load the demo data once (running it again changes nothing) and print the logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the site is served, for the printed admin URL."
        )
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Load the demo even with DEBUG off. Its users have published passwords: never on a public server.",
        )

    def handle(self, *args, base_url, allow_without_debug, **options):
        if not settings.DEBUG and not allow_without_debug:
            raise CommandError(
                "seed_demo creates users with published passwords, so it runs only with DJANGO_DEBUG on "
                "(or with --allow-without-debug on a machine nobody else can reach)."
            )
        with application_errors():
            seed = demo_seed(base_url=base_url)
        out = self.stdout
        if seed.created:
            out.write(
                self.style.SUCCESS(f"Demo data loaded: tenant {seed.tenant.slug!r} ({seed.tenant.name}, {seed.tenant.timezone}).")
            )
        else:
            out.write(
                self.style.WARNING(f"Demo data is loaded already (tenant {seed.tenant.slug!r} exists): nothing was changed.")
            )
        for line in seed.summary:
            out.write(f"  Book {line}")

        base_url = base_url.rstrip("/")
        out.write("")
        out.write(f"Back office: {base_url}/admin/")
        if not seed.created:
            out.write("  (the demo passwords, unless they were changed since)")
        width = max(len(login.username) for login in seed.logins)
        for login in seed.logins:
            out.write(f"  {login.username:<{width}}  password {login.password:<26} {login.role}")
        out.write("")
        out.write(f"API: {base_url}/api/v1/ (exchange the client id and secret for a token at /api/v1/auth/token/)")
        if seed.client_secret:
            out.write(f"  client_id      {seed.client_id}")
            out.write(f"  client_secret  {seed.client_secret}")
            out.write("  The secret is shown this once (only its hash is stored): note it now.")
        else:
            if seed.client_id:
                out.write(f"  client_id      {seed.client_id} (its secret was shown when it was created and is not stored)")
            out.write(f"  For new credentials: python manage.py create_api_client {seed.tenant.slug} 'My client'")
        if settings.COUPONS["WEBHOOKS_DEMO_RECEIVER"]:
            out.write("")
            out.write(
                f"Webhooks: the demo's events are delivered to {base_url}/webhooks/demo-receiver/<id>/ once the worker runs; "
                f"see {base_url}/admin/webhooks/webhookdelivery/ (as admin)."
            )
