"""JSON answers for paths no API view handled: unknown paths under /api/ (404) and crashes (500/503)."""

import sys

from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from core.exceptions import error_response
from core.middleware import DATABASE_ERRORS, is_api_path, server_error_response, service_unavailable_response


@csrf_exempt
def not_found_json(request, *args, **kwargs) -> JsonResponse:
    return error_response("not_found", f"No endpoint at {request.path[:200]}.")


def not_found(request, exception=None):
    """handler404: JSON under /api/, Django's page elsewhere."""
    if is_api_path(request.path):
        return not_found_json(request)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: 503 when the database is unavailable; JSON under /api/, Django's page elsewhere."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return service_unavailable_response()
    if is_api_path(request.path):
        return server_error_response()
    return defaults.server_error(request)
