"""`create_staff_user TENANT_SLUG USERNAME --role ROLE [--email]`: a back-office user of one tenant.

The password never travels on the command line (it would land in shell history and `ps`): it comes from the
environment variable COUPONS_STAFF_PASSWORD, or from a prompt when a person is at the terminal.
"""

import getpass
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from tenants.inputs import clean_password
from tenants.models import Role
from tenants.services import staff_user_create, tenant_get

from ._support import application_errors

PASSWORD_VARIABLE = "COUPONS_STAFF_PASSWORD"


class Command(BaseCommand):
    help = f"Create a staff user of a tenant with a role. The password comes from ${PASSWORD_VARIABLE} or a prompt."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values, help="What the user may do in the back office.")
        parser.add_argument("--email", default="")

    def handle(self, *args, tenant_slug, username, role, email, **options):
        with application_errors():
            tenant = tenant_get(slug=tenant_slug)
            password = clean_password(self._password(), username=username, email=email)
            user = staff_user_create(tenant=tenant, username=username, password=password, role=role, email=email)
        self.stdout.write(self.style.SUCCESS(f"Created {role} user {user.username!r} of tenant {tenant.slug!r}."))

    def _password(self) -> str:
        password = os.environ.get(PASSWORD_VARIABLE)
        if password is not None:
            return password
        if not sys.stdin.isatty():
            raise CommandError(f"No password: set {PASSWORD_VARIABLE}, or run the command at a terminal to be prompted.")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise CommandError("The two passwords differ; nothing was created.")
        return password
