"""OpenAPI schema of the integrator API, written for the clients that integrators generate from it.

The AutoSchema here applies the rules every operation follows, so that a client generator (openapi-python-client
is the one tested, api/tests/test_generated_client.py) produces a complete, typed client without a warning:

- **Operation ids are designed**, never derived: each view method names its own with
  ``@operation("<entity>_<action>", "<tag>", ...)`` (``books_list``, ``book_create``, ``code_redeem``), which
  passes on to ``extend_schema``; one without is a schema warning, which ``spectacular --fail-on-warn`` and the tests turn into a failure.
- **Errors**: every operation lists each error status it can answer with the codes behind it, plus a
  ``default`` answer of the same ``ErrorOutput`` shape for everything else (405, 406, 500), so a strict client
  parses any error. Declare an endpoint's own codes in ``error_codes`` (checked by ``errors()``).
- **Output fields are required**: a response serializer renders every field it declares, so each is required
  (nullable where it can be null). Only a field declared on the serializer with ``required=False`` is optional.
- **Decimals** are strings with a strict pattern (no empty string, no lone dot; a minus only where allowed).
- **Pages** have one component per pagination style (``BookOutputPage`` by number with ``count``,
  ``CodeOutputCursorPage`` by cursor), so two endpoints never share a shape by name.
- **Binary answers** (the Excel workbooks) are declared with their own media type and
  ``application/octet-stream``, which generators know as bytes, with ``Content-Disposition``
  (use ``binary_response()``).
- **Headers**: ``Idempotency-Key`` (with its length and charset) on idempotent POSTs, ``Idempotent-Replayed``
  on their success answers, ``Retry-After`` on 429 and 503.

A new endpoint follows the same conventions (see the README, "Integrator guide"): an ``ApiView``, its handler
declared with ``operation()`` (at the end of this module), serializers for its input and output.
"""

import inspect
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination

from core.downloads import XLSX_CONTENT_TYPE
from core.exceptions import ERROR_STATUS

from .examples import BY_OPERATION as EXAMPLES_BY_OPERATION
from .examples import ERROR_EXAMPLES, SERVER_ERROR
from .idempotency import HEADER as IDEMPOTENCY_HEADER
from .idempotency import KEY_PATTERN, MAX_KEY_LENGTH, REPLAY_HEADER, idempotent, is_idempotent

ERROR_CODES = sorted(ERROR_STATUS)
XLSX = XLSX_CONTENT_TYPE
BINARY = "application/octet-stream"
CSV = "text/csv"
# What a workbook download answers: the XLSX type, or bytes for a client that accepts only those.
WORKBOOK_TYPES = (XLSX, BINARY)
# What a job's file answers: an export's workbook or a distribution's CSV (or bytes).
JOB_FILE_TYPES = (XLSX, BINARY, CSV)

RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."},
}


class TextList(serializers.ListField):
    """A list of strings in an answer (codes, warnings, product ids)."""

    child = serializers.CharField()


class FieldErrorOutput(serializers.Serializer):
    field = serializers.CharField(
        help_text="Path of the invalid input: a body field (`amount`), an item (`codes.3`), a nested field "
        "(`product_ids.0`), a query parameter (`page_size`) or a header (`Idempotency-Key`). Empty for an error "
        "of the request as a whole."
    )
    message = serializers.CharField(help_text="What is wrong with it, for people.")


class ErrorDetailsOutput(serializers.Serializer):
    """Context of an error. Always an object; which keys it holds depends on the code (README, "Error codes")."""

    field = serializers.CharField(
        required=False, help_text="invalid_input: the path of the (first) invalid input; always present for it."
    )
    errors = FieldErrorOutput(
        many=True, required=False, help_text="invalid_input: every invalid input with its message; always present for it."
    )
    retry_after = serializers.IntegerField(required=False, help_text="throttled: seconds to wait.")
    limit = serializers.IntegerField(required=False, help_text="The limit that was reached.")
    codes = TextList(required=False, help_text="duplicate_codes: the codes at fault (the first 100).")
    count = serializers.IntegerField(required=False, help_text="How many inputs are at fault, or were asked for.")
    space = serializers.IntegerField(required=False, help_text="pattern_space_too_small: how many codes the pattern can make.")
    available = serializers.IntegerField(required=False, help_text="book_exhausted (distribution): the free codes left.")
    code = serializers.CharField(required=False, help_text="The code concerned.")
    book = serializers.IntegerField(required=False, allow_null=True, help_text="The book's id (null: not an id).")
    job = serializers.IntegerField(required=False, allow_null=True, help_text="The job's id (null: not an id).")
    redemption = serializers.IntegerField(required=False, allow_null=True, help_text="The redemption's id (null: not an id).")


class ErrorBody(serializers.Serializer):
    code = serializers.ChoiceField(choices=ERROR_CODES, help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="For people; may change.")
    details = ErrorDetailsOutput(help_text="Context of the error: the invalid fields, the limit reached, the codes at fault.")


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
    name=IDEMPOTENCY_HEADER,
    type={"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN},
    location=OpenApiParameter.HEADER,
    required=False,
    description=f"1 to {MAX_KEY_LENGTH} printable ASCII characters (no space at either end). A retry with the same "
    "key and body replays the first answer; the same key with another body answers 422 idempotency_key_mismatch.",
)

REPLAYED_HEADER_PARAMETER = OpenApiParameter(
    name=REPLAY_HEADER,
    type={"type": "string", "enum": ["true"]},
    location=OpenApiParameter.HEADER,
    response=[200, 201, 202],
    required=False,
    description="Present (`true`) when this answer is the stored answer of an earlier request with the same Idempotency-Key.",
)

CONTENT_DISPOSITION_PARAMETER = OpenApiParameter(
    name="Content-Disposition",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    response=[200],
    required=True,
    description='`attachment; filename="redemptions-<tenant>-<time>.xlsx"` (a distribution\'s: `distribution-<job>.csv`): '
    "the name to save the file under.",
)

ALWAYS = ("invalid_input", "not_acceptable", "throttled", "service_unavailable")
AUTHENTICATED = ("not_authenticated", "authentication_failed", "permission_denied")
WITH_BODY = ("parse_error", "request_too_large", "unsupported_media_type")
DEFAULT_ERRORS = ("method_not_allowed", "not_acceptable", "server_error")
OPERATION_ID = re.compile(r"^[a-z]+(_[a-z]+)*$")


def binary_response(description: str) -> dict:
    """The 200 answer of a workbook download, for ``extend_schema(responses=...)``."""
    return {(200, XLSX, BINARY): OpenApiResponse(OpenApiTypes.BINARY, description=description)}


def job_file_schema(description: str) -> dict:
    """The 200 answer of a job's file: a workbook or a CSV, or bytes.

    Bytes come before the CSV: a client generator reads the answer as the first media type it knows, and bytes
    suit both files (openapi-python-client would read text/csv as a str)."""
    return {(200, XLSX, BINARY, CSV): OpenApiResponse(OpenApiTypes.BINARY, description=description)}


def file_content_type(request, media_type: str) -> str:
    """`media_type`, or application/octet-stream for a client that accepts only that."""
    django_request = getattr(request, "_request", request)
    if not django_request.accepts(media_type) and django_request.accepts(BINARY):
        return BINARY
    return f"{media_type}; charset=utf-8" if media_type.startswith("text/") else media_type


def workbook_content_type(request) -> str:
    """The XLSX type, or application/octet-stream for a client that accepts only that (both are declared)."""
    django_request = getattr(request, "_request", request)
    if not django_request.accepts(XLSX) and django_request.accepts(BINARY):
        return BINARY
    return XLSX


class ApiAutoSchema(AutoSchema):
    """The conventions of the module docstring, applied to every operation."""

    def get_operation_id(self):
        # Reached only when the view did not name its operation (extend_schema(operation_id=...) wins).
        derived = super().get_operation_id()
        warn(f"{self.method} {self.path}: name the operation with extend_schema(operation_id=...) (derived: {derived})")
        return derived

    def get_description(self):
        # A handler's docstring is its summary and description, which operation() declares; without a declared
        # description, the view class's docstring (never the summary again).
        return get_doc(self.view.__class__)

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None and not OPERATION_ID.match(operation["operationId"]):
            warn(f"{method} {path}: operation id {operation['operationId']!r} is not lower_snake_case")
        return operation

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if is_idempotent(self.view, self.method):
            parameters += [IDEMPOTENCY_KEY_PARAMETER, REPLAYED_HEADER_PARAMETER]
        if getattr(self.view, "produces", None):
            parameters.append(CONTENT_DISPOSITION_PARAMETER)
        return parameters

    def _get_filter_parameters(self):
        # django-filter's max_length is refused by the server (400): the schema says it too.
        parameters = super()._get_filter_parameters()
        filterset = getattr(self.view, "filterset_class", None)
        filters = filterset.base_filters if filterset is not None else {}
        for parameter in parameters:
            max_length = getattr(filters.get(parameter["name"]), "extra", {}).get("max_length")
            if max_length is not None:
                parameter["schema"]["maxLength"] = max_length
        return parameters

    def get_paginated_name(self, serializer_name: str) -> str:
        # drf-spectacular keeps the first component registered under a name: a page by number and a page by
        # cursor of the same items must not share one.
        if isinstance(self._get_paginator(), CursorPagination):
            return f"{serializer_name}CursorPage"
        return f"{serializer_name}Page"

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response":
            optional = {
                name
                for name, field in getattr(serializer, "_declared_fields", {}).items()
                if not field.required and not field.read_only
            }
            required = [name for name in schema.get("properties", {}) if name not in optional]
            if required:
                schema["required"] = required
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.DecimalField) and "pattern" in schema:
            whole = field.max_digits - field.decimal_places
            sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
            schema["pattern"] = rf"^{sign}\d{{1,{whole}}}(?:\.\d{{1,{field.decimal_places}}})?$"
        return schema

    def error_codes(self) -> set[str]:
        codes = set(ALWAYS)
        if getattr(self.view, "authentication_classes", None):
            codes.update(AUTHENTICATED)
        if self.method in ("POST", "PUT", "PATCH"):
            codes.update(WITH_BODY)
        if is_idempotent(self.view, self.method):
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
            example = ERROR_EXAMPLES.get(status)
            examples = [OpenApiExample(example["error"]["code"], value=example)] if example else []
            responses[key] = self._get_response_for_code(
                OpenApiResponse(ErrorOutput, description=f"Error codes: {listed}.", examples=examples), key, direction=direction
            )
            if status in (429, 503):
                responses[key]["headers"] = dict(RETRY_AFTER)
        listed = ", ".join(f"`{code}` ({ERROR_STATUS[code]})" for code in DEFAULT_ERRORS)
        responses["default"] = self._get_response_for_code(
            OpenApiResponse(
                ErrorOutput,
                description=f"Any other error, in the same shape: {listed}.",
                examples=[OpenApiExample("server_error", value=SERVER_ERROR)],
            ),
            "default",
            direction=direction,
        )
        return responses


def errors(*codes: str) -> tuple[str, ...]:
    """The error codes an endpoint can answer (beyond the common ones), checked against core.exceptions."""
    unknown = [code for code in codes if code not in ERROR_STATUS]
    if unknown:
        raise ValueError(f"unknown error codes {unknown}")
    return codes


def operation(operation_id: str, tag: str, *, once: bool = False, one_transaction: bool = False, **schema: Any) -> Callable:
    """Declares a view handler as one API operation, in one line: its designed id (``<entity>_<action>``) and its
        tag, the rest of extend_schema (request, responses, parameters) as keywords. The handler's docstring gives the summary (its
        first paragraph) and the description (the rest), white space folded; the operation's examples come from
        api/examples.py `BY_OPERATION`. `once=True` makes the handler @idempotent; `one_transaction=True` too, with the
    key's transaction as the service's (api/idempotency.py: for handlers that call one atomic service).
    """

    def declare(handler: Callable) -> Callable:
        if once or one_transaction:
            handler = idempotent(handler, one_transaction=one_transaction)
        summary, _, description = inspect.cleandoc(handler.__doc__ or "").partition("\n\n")
        schema.setdefault("summary", " ".join(summary.split()))
        if description.strip():
            schema.setdefault("description", " ".join(description.split()))
        if operation_id in EXAMPLES_BY_OPERATION:
            schema.setdefault("examples", EXAMPLES_BY_OPERATION[operation_id])
        return extend_schema(operation_id=operation_id, tags=[tag], **schema)(handler)

    return declare
