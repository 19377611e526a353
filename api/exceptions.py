"""The one DRF exception handler: every error of the API answers {"error": {"code", "message", "details"}}.

ApplicationError carries its own stable code (its HTTP status is decided in core.exceptions.ERROR_STATUS); DRF's
own exceptions are mapped to codes of the same table here. Anything else is left to core.middleware, which
answers 503 for an unavailable database and a JSON 500 otherwise.
"""

import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from core.exceptions import ERROR_STATUS, ApplicationError

# DRF exception class -> our stable code (checked in order: subclasses first).
DRF_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ValidationError, "invalid_input"),
    (exceptions.ParseError, "parse_error"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]


def error_body(code: str, message: str, details: object = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def _message(detail: object) -> str:
    if isinstance(detail, list) and detail:
        return _message(detail[0])
    if isinstance(detail, dict):
        return "The request is invalid; see details."
    return str(detail)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    response = _handle(exc)
    if response is None:
        return None
    view = context.get("view")
    request = context.get("request")
    if isinstance(exc, ApplicationError) and exc.code == "code_not_found" and view is not None and request is not None:
        # Failed look-ups of codes count towards the stricter throttle that stops guessing.
        from .throttling import failed_lookup_record

        failed_lookup_record(request)
    return response


def _handle(exc: Exception) -> Response | None:
    if isinstance(exc, ApplicationError):
        headers = {}
        if exc.status == 503:
            headers["Retry-After"] = "5"
        return Response(exc.as_dict(), status=exc.status, headers=headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is too large.", {}), status=ERROR_STATUS["request_too_large"]
        )
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return Response(error_body("invalid_input", "The request has too many fields or files.", {}), status=400)
    if not isinstance(exc, exceptions.APIException):
        return None
    code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), "invalid_input")
    headers = {}
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = "The request is invalid; see details."
    else:
        details = {}
        message = _message(exc.detail)
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        headers["Retry-After"] = str(wait)
        details = {"retry_after": wait}
        message = f"Too many requests; retry in {wait} second(s)."
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    status = ERROR_STATUS.get(code, exc.status_code)
    return Response(error_body(code, message, details), status=status, headers=headers)
