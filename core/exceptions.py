"""The one application error type: a stable machine-readable code, a message and details.

Services raise it for every rule a caller can break; the API maps it to the JSON error shape and the admin shows
its message. The HTTP status of each code is decided here, once.
"""

from typing import Any

from django.http import JsonResponse

# Stable error codes and the HTTP status each one answers with.
ERROR_STATUS: dict[str, int] = {
    # 400: the request itself is wrong
    "invalid_input": 400,
    "invalid_pattern": 400,
    "pattern_no_random_symbol": 400,
    "pattern_space_too_small": 400,
    "invalid_codes": 400,
    "empty_upload": 400,
    "duplicate_codes": 409,
    "parse_error": 400,
    # 401: no credentials, or bad ones
    "not_authenticated": 401,
    "authentication_failed": 401,
    # 404: unknown, or another tenant's
    "tenant_not_found": 404,
    "book_not_found": 404,
    "code_not_found": 404,
    "redemption_not_found": 404,
    "job_not_found": 404,
    "reservation_not_found": 404,
    "not_found": 404,
    "signing_key_not_found": 404,
    "webhook_not_found": 404,
    "webhook_delivery_not_found": 404,
    # 405, 406, 413, 415: the request's form is not accepted
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "request_too_large": 413,
    "unsupported_media_type": 415,
    # 422: an Idempotency-Key reused with another request
    "idempotency_key_mismatch": 422,
    # 429: too many requests; Retry-After says when to try again
    "throttled": 429,
    # 500, 503: the service's fault; 503 means "retry later" (database unavailable)
    "server_error": 500,
    "service_unavailable": 503,
    # 403: the caller may not do this
    "code_not_assigned_to_user": 403,
    "permission_denied": 403,
    # 409: the state of things forbids it
    "book_exhausted": 409,
    "user_code_limit_reached": 409,
    "code_already_assigned": 409,
    "code_not_assignable": 409,
    "code_locked": 409,
    "code_exhausted": 409,
    "code_voided": 409,
    "code_expired": 409,
    "user_redemption_limit_reached": 409,
    "book_not_active": 409,
    "book_not_started": 409,
    "book_expired": 409,
    "book_archived": 409,
    "product_not_eligible": 409,
    "currency_mismatch": 409,
    "reservation_expired": 409,
    "reservation_not_active": 409,
    "redemption_already_reversed": 409,
    "uses_below_redemptions": 409,
    "generation_collisions": 409,
    # campaign limits (books/rules.py): the book's, and the order's
    "book_redemption_limit_reached": 409,
    "book_budget_exhausted": 409,
    "order_below_minimum": 409,
    "order_amount_required": 409,
}


def id_detail(value: object) -> int | None:
    """An object's id as error details give it: always an integer, or null when the caller's value is not one."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 0 <= number < 2**63 else None


class ApplicationError(Exception):
    """A rule of the service was broken; `code` is stable and documented, `message` is for people."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown application error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]

    def as_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)

    def __repr__(self) -> str:
        return f"ApplicationError({self.code!r}, {self.message!r})"


# --- The error body: the one shape every error answer of the service has -----------------------------------


def error_body(code: str, message: str, details: object = None) -> dict[str, Any]:
    """{"error": {"code", "message", "details"}}: the body of every error answer (API, middleware, admin JSON)."""
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def invalid_input_details(details: dict, message: str) -> dict:
    """The documented details of invalid_input: `field` (the first invalid input) and `errors` (each of them).

    A service's ApplicationError names its field in `field` (or several in `fields`); its other context stays.
    """
    if isinstance(details.get("errors"), list):
        return details
    fields = details.get("fields") if isinstance(details.get("fields"), list) else [details.get("field", "")]
    errors = [{"field": str(field), "message": message} for field in fields] or [{"field": "", "message": message}]
    context = {key: value for key, value in details.items() if key not in ("field", "fields")}
    return {**context, "field": errors[0]["field"], "errors": errors}


def error_response(code: str, message: str, details: object = None) -> JsonResponse:
    """An error answer outside DRF (middleware, handlers, admin JSON views), its status from ERROR_STATUS."""
    return JsonResponse(error_body(code, message, details), status=ERROR_STATUS[code])
