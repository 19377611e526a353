from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _role_groups_sync(**kwargs) -> None:
    from tenants.roles import role_groups_sync

    role_groups_sync()


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        # The role groups must exist after every migrate (and after a test database flush). This app is listed
        # last, so by the time its post_migrate runs every other app's permissions have been created.
        post_migrate.connect(_role_groups_sync, sender=self, dispatch_uid="backoffice.role_groups_sync")
        # Every admin (registered by now: the admin's autodiscovery ran in its own ready(), listed first).
        from django.contrib import admin

        from .safety import admins_harden

        admins_harden(admin.site)
