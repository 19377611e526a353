"""Top-level URL configuration."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.views.errors import not_found_json
from api.views.health import healthz
from dashboard.views import dashboard
from webhooks.demo import demo_receiver

admin.site.site_header = "Coupon service"
admin.site.site_title = "Coupon service"
admin.site.index_title = "Back office"

urlpatterns = [
    # The back office: a tenant user's admin index is their dashboard; the back office's own views sit beside it.
    path("admin/", admin.site.admin_view(dashboard), name="backoffice_dashboard"),
    path("admin/backoffice/", include("dashboard.urls")),
    path("admin/", admin.site.urls),
    # Mounted where the WSGI application sends requests to the API's shorter middleware (settings, wsgi.py).
    path(settings.API_PATH_PREFIX.removeprefix("/"), include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^api/", not_found_json),
    path("healthz", healthz, name="healthz"),
    # The demo receiver of `make run` (404 unless WEBHOOKS_DEMO_RECEIVER, which follows DEBUG).
    path("webhooks/demo-receiver/<int:endpoint_id>/", demo_receiver, name="webhooks-demo-receiver"),
]

# JSON errors under /api/ (and 503 when the database is down) when DEBUG is off.
handler404 = "api.views.errors.not_found"
handler500 = "api.views.errors.server_error"
