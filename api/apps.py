from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Integrator API"

    def ready(self) -> None:
        # Registers the OpenAPI description of the bearer authentication (drf-spectacular extension).
        from . import schema  # noqa: F401
