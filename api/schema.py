"""OpenAPI schema helpers: the error component (with every stable error code as an enum) and an AutoSchema that
documents, on every operation, the error answers it can give and the codes behind each status."""

from collections import defaultdict

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from core.exceptions import ERROR_STATUS

ERROR_CODES = sorted(ERROR_STATUS)

RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."},
}


@extend_schema_field({"type": "object", "additionalProperties": {}})
class ErrorDetailsField(serializers.JSONField):
    pass


class ErrorBody(serializers.Serializer):
    code = serializers.ChoiceField(choices=ERROR_CODES, help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="For people; may change.")
    details = ErrorDetailsField(help_text="Context of the error: the offending field(s), codes, limits.")


class ErrorOutput(serializers.Serializer):
    error = ErrorBody()


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An API client's access token (POST /api/v1/auth/token/), or an end user's token signed "
            "with a registered key (header `kid`, claims `sub` and `exp`).",
        }


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Up to 255 printable ASCII characters. A retry with the same key and body replays the first "
    "answer; the same key with another body answers 422 idempotency_key_mismatch.",
)

ALWAYS = ("invalid_input", "not_acceptable", "throttled", "service_unavailable")
AUTHENTICATED = ("not_authenticated", "authentication_failed", "permission_denied")
WITH_BODY = ("parse_error", "request_too_large", "unsupported_media_type")


class ApiAutoSchema(AutoSchema):
    """Adds to every operation its error answers: each status with the error codes behind it."""

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST" and getattr(self.view, "idempotent", False):
            parameters.append(IDEMPOTENCY_KEY_PARAMETER)
        return parameters

    def error_codes(self) -> set[str]:
        codes = set(ALWAYS)
        if getattr(self.view, "authentication_classes", None):
            codes.update(AUTHENTICATED)
        if self.method in ("POST", "PUT", "PATCH"):
            codes.update(WITH_BODY)
        if self.method == "POST" and getattr(self.view, "idempotent", False):
            codes.add("idempotency_key_mismatch")
        if "{" in self.path:
            codes.add("not_found")
        declared = getattr(self.view, "error_codes", ())
        if isinstance(declared, dict):
            declared = declared.get(self.method, ())
        codes.update(declared)
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        by_status: dict[int, list[str]] = defaultdict(list)
        for code in sorted(self.error_codes()):
            by_status[ERROR_STATUS[code]].append(code)
        for status in sorted(by_status):
            key = str(status)
            if key in responses:
                continue
            listed = ", ".join(f"`{code}`" for code in by_status[status])
            responses[key] = self._get_response_for_code(
                OpenApiResponse(ErrorOutput, description=f"Error codes: {listed}."), key, direction=direction
            )
            if status in (429, 503):
                responses[key]["headers"] = dict(RETRY_AFTER)
        return responses


def errors(*codes: str) -> tuple[str, ...]:
    """The error codes an endpoint can answer (beyond the common ones), checked against core.exceptions."""
    unknown = [code for code in codes if code not in ERROR_STATUS]
    if unknown:
        raise ValueError(f"unknown error codes {unknown}")
    return codes
