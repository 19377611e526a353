from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _role_groups_sync(**kwargs) -> None:
    from tenants.roles import role_groups_sync

    role_groups_sync()


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        # The role groups must exist after every migrate (and after a test database flush). Django sends
        # post_migrate once per app that has models, in INSTALLED_APPS order, each after that app's permissions
        # were created: hooked to the last such app, the sync runs when every permission exists.
        last = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
        post_migrate.connect(_role_groups_sync, sender=last, dispatch_uid="backoffice.role_groups_sync")
        # Every admin (registered by now: the admin's autodiscovery ran in its own ready(), listed first).
        from django.contrib import admin

        from .safety import admins_harden

        admins_harden(admin.site)
