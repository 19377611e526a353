"""Errors no view handled: an unavailable database answers 503 JSON with Retry-After, anywhere in a request;
any other crash under /api/ answers a JSON 500 (still logged and reported as usual)."""

import logging

from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpResponseBadRequest, JsonResponse

logger = logging.getLogger("django.request")

DATABASE_ERRORS = (OperationalError, InterfaceError)


def service_unavailable_response() -> JsonResponse:
    response = JsonResponse(
        {
            "error": {
                "code": "service_unavailable",
                "message": "The service is temporarily unavailable; retry shortly.",
                "details": {},
            }
        },
        status=503,
    )
    response["Retry-After"] = str(settings.COUPONS["API_UNAVAILABLE_RETRY_AFTER"])
    return response


def server_error_response() -> JsonResponse:
    return JsonResponse(
        {"error": {"code": "server_error", "message": "An unexpected error occurred; it has been logged.", "details": {}}},
        status=500,
    )


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class ServiceErrorMiddleware:
    """Listed first in MIDDLEWARE. A view's exception (DRF re-raises what its handler does not map) reaches
    process_exception here. An exception raised inside another middleware is turned into a response by Django
    itself, through handler500 (api.views.errors.server_error), which answers the same 503 or JSON 500 when
    DEBUG is off."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning("database unavailable during %s %s", request.method, request.path, exc_info=True)
            return service_unavailable_response()
        if is_api_path(request.path):
            logger.error("server error on %s %s", request.method, request.path, exc_info=exception)
            # Still tell Django's listeners (the test client re-raises it, error reporting sees it).
            got_request_exception.send(sender=self.__class__, request=request)
            return server_error_response()
        return None


class NulByteMiddleware:
    """Refuses a request whose path or query string holds a NUL byte: 400, before any view reads it.

    PostgreSQL cannot store or compare text holding NUL (psycopg raises), so such a value reaching any filter, look-up
    or path parameter would be a 500. One check here covers every route and every admin filter.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        field = (
            "path"
            if "\x00" in request.path
            else next(
                (key for key, values in request.GET.lists() if "\x00" in key or any("\x00" in value for value in values)), None
            )
        )
        if field is not None:
            message = "The URL holds a NUL byte."
            if is_api_path(request.path):
                # invalid_input's documented details: the first invalid input and each of them (README, Error codes).
                details = {"field": field, "errors": [{"field": field, "message": message}]}
                return JsonResponse({"error": {"code": "invalid_input", "message": message, "details": details}}, status=400)
            return HttpResponseBadRequest(message)
        return self.get_response(request)
