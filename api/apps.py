from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Integrator API"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from tenants.models import ApiClient, Tenant

        # schema: registers the OpenAPI description of the bearer authentication (drf-spectacular extension).
        from . import credentials, schema  # noqa: F401
        from .models import EndUserSigningKey

        # Every write to a credential row or its tenant gives the processes' cached entries a new version.
        for signal in (post_save, post_delete):
            signal.connect(credentials.client_saved_or_deleted, sender=ApiClient, dispatch_uid="api-credentials-client")
            signal.connect(credentials.signing_key_saved_or_deleted, sender=EndUserSigningKey, dispatch_uid="api-credentials-key")
            signal.connect(credentials.tenant_saved_or_deleted, sender=Tenant, dispatch_uid="api-credentials-tenant")
