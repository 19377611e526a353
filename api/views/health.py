"""GET /healthz: each dependency reported on its own: {"status", "database", "cache", "broker"}.

The database is the only one the service cannot work without: 503 (with Retry-After) when it is down. A lost
cache or broker is "degraded", still 200: the lifecycle keeps working (throttles and job progress fall back,
jobs wait in their rows for the broker), and a load balancer must not take every web process out for it.
"""

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from core.dependencies import broker_ok, cache_ok, database_ok


def _state(ok: bool) -> str:
    return "ok" if ok else "unavailable"


@require_GET
def healthz(request) -> JsonResponse:
    database, cache, broker = database_ok(), cache_ok(), broker_ok()
    if not database:
        status = "unavailable"
    elif cache and broker:
        status = "ok"
    else:
        status = "degraded"
    response = JsonResponse(
        {"status": status, "database": _state(database), "cache": _state(cache), "broker": _state(broker)},
        status=200 if database else 503,
    )
    if not database:
        response["Retry-After"] = str(settings.COUPONS["API_UNAVAILABLE_RETRY_AFTER"])
    return response
