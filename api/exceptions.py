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
from rest_framework.settings import api_settings

from core.exceptions import ERROR_STATUS, ApplicationError, error_body, invalid_input_details

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


def field_errors(detail: object, path: str = "") -> list[dict[str, str]]:
    """DRF's nested validation errors as a flat list of {"field": path, "message"}: `codes.3`, `product_ids.0`."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            name = "" if key == api_settings.NON_FIELD_ERRORS_KEY else str(key)
            found += field_errors(value, f"{path}.{name}" if path and name else path or name)
        return found
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": path, "message": str(item)} for item in detail]
        found = []
        for index, item in enumerate(detail):
            if item:  # a list serializer's valid items answer {}
                found += field_errors(item, f"{path}.{index}" if path else str(index))
        return found
    return [{"field": path, "message": str(detail)}]


def invalid_input_message(errors: list[dict[str, str]]) -> str:
    if len(errors) > 1:
        return f"{len(errors)} inputs are invalid; see details.errors."
    field, text = errors[0]["field"], errors[0]["message"]
    return f"{field}: {text}" if field else text


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
        details = invalid_input_details(exc.details, exc.message) if exc.code == "invalid_input" else exc.details
        return Response(error_body(exc.code, exc.message, details), status=exc.status, headers=headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is too large.", {}), status=ERROR_STATUS["request_too_large"]
        )
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        message = "The request has too many fields or files."
        return Response(error_body("invalid_input", message, invalid_input_details({}, message)), status=400)
    if not isinstance(exc, exceptions.APIException):
        return None
    code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), "invalid_input")
    headers = {}
    if isinstance(exc, exceptions.ValidationError):
        errors = field_errors(exc.detail) or [{"field": "", "message": "The request is invalid."}]
        details = {"field": errors[0]["field"], "errors": errors}
        message = invalid_input_message(errors)
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
