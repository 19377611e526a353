"""URLs of the integrator REST API, mounted under /api/v1/."""

urlpatterns: list = []
