"""GET /healthz: is the database reachable? 200 when it answers, 503 when it does not."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from core.middleware import DATABASE_ERRORS


@require_GET
def healthz(request) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DATABASE_ERRORS:
        response = JsonResponse({"status": "unavailable", "database": "unavailable"}, status=503)
        response["Retry-After"] = "5"
        return response
    return JsonResponse({"status": "ok", "database": "ok"})
