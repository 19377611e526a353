"""The OpenAPI schema: it validates, documents every endpoint's errors, serves Swagger UI from local assets, and
a schemathesis run against it (bounded: a few examples per operation) finds no 5xx and no answer that
contradicts it."""

import io
import json
import os
import re

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.schema import XLSX
from api.services import api_tokens_issue
from books.rules import ORDER_RULES, USE_RULES
from core.tests.documented_errors import documented_error_statuses
from tests.factories import CodeFactory, CouponBookFactory, RedemptionFactory

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Examples per operation and mode: 25 operations x 2 modes x 12 examples stay well under two minutes.
# API_FUZZ_EXAMPLES raises it for a deeper run by hand.
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "12"))


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").stat().st_size > 10_000


def test_the_schema_lists_every_error_code(http):
    schema = http.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert sorted(schema["components"]["schemas"]["ErrorCodeEnum"]["enum"]) == sorted(documented_error_statuses())
    redeem = schema["paths"]["/api/v1/codes/{code}/redeem/"]["post"]
    assert {"201", "400", "401", "403", "404", "409", "422", "429", "503"} <= set(redeem["responses"])
    assert "code_exhausted" in redeem["responses"]["409"]["description"]
    assert any(p["name"] == "Idempotency-Key" for p in redeem["parameters"])
    assert "Retry-After" in redeem["responses"]["429"]["headers"]


@pytest.fixture
def schema(http):
    return http.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def component(schema, ref_holder: dict) -> tuple[str, dict]:
    name = ref_holder["$ref"].rsplit("/", 1)[-1]
    return name, schema["components"]["schemas"][name]


def test_operation_ids_are_designed_and_tags_group_what_belongs_together(schema):
    ids = {(path, method): (op["operationId"], op["tags"]) for path, method, op in operations(schema)}
    names = [operation_id for operation_id, _ in ids.values()]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", name) and not name.startswith("v1_") for name in names), names
    assert ids[("/api/v1/codes/{code}/redeem/", "post")] == ("code_redeem", ["checkout"])
    assert ids[("/api/v1/end-user-keys/{kid}/", "delete")] == ("end_user_key_revoke", ["end-user keys"])
    assert ids[("/api/v1/books/", "get")] == ("books_list", ["books"])
    assert ids[("/api/v1/books/", "post")] == ("book_create", ["books"])
    # Giving codes to customers, and listing a customer's codes, in one group.
    assert ids[("/api/v1/books/{book_id}/assign/", "post")] == ("code_assign_random", ["assignment"])
    assert ids[("/api/v1/codes/{code}/assign/", "post")] == ("code_assign", ["assignment"])
    assert ids[("/api/v1/users/{user_id}/codes/", "get")] == ("user_codes_list", ["assignment"])


def test_each_list_points_to_the_page_shape_of_its_own_pagination(schema):
    pages = {
        "/api/v1/books/": ("BookOutputPage", True),
        "/api/v1/end-user-keys/": ("SigningKeyOutputPage", True),
        "/api/v1/users/{user_id}/codes/": ("CodeOutputPage", True),
        "/api/v1/books/{book_id}/codes/": ("CodeOutputCursorPage", False),
        "/api/v1/redemptions/": ("RedemptionOutputCursorPage", False),
    }
    for path, (expected, counted) in pages.items():
        name, page = component(schema, schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
        assert name == expected, path
        assert ("count" in page["properties"]) is counted, path
        parameters = {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters["page_size"]["minimum"] == 1 and parameters["page_size"]["maximum"] in (500, 1000)
        if counted:
            assert parameters["page"]["minimum"] == 1
        for link in ("next", "previous"):
            # DRF's placeholders name api.example.org/accounts/, and one of them ends in a stray quote.
            example = page["properties"][link]["example"]
            assert example.startswith("https://coupons.example.com/api/v1/") and '"' not in example, example
        assert set(page["required"]) == set(page["properties"]), path
    assert "api.example.org" not in json.dumps(schema)


def test_every_field_of_an_answer_is_required(schema):
    # Components whose keys depend on the case, each key documented: error details and a job's result.
    optional = {"ErrorDetailsOutput", "JobResultOutput"}
    for name, shape in schema["components"]["schemas"].items():
        if not name.endswith(("Output", "Page")) or name in optional or "properties" not in shape:
            continue
        assert set(shape.get("required", [])) == set(shape["properties"]), name
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message", "details"]


def test_workbooks_are_binary_answers_with_their_file_name(schema):
    # A job's file is an export's workbook or a distribution's CSV.
    files = {"/api/v1/redemptions/export/": set(), "/api/v1/jobs/{job_id}/file/": {"text/csv"}}
    for path, more in files.items():
        answer = schema["paths"][path]["get"]["responses"]["200"]
        assert set(answer["content"]) == {XLSX, "application/octet-stream", *more}
        assert all(media["schema"] == {"type": "string", "format": "binary"} for media in answer["content"].values())
        assert answer["headers"]["Content-Disposition"]["required"] is True


def test_every_operation_answers_errors_in_one_shape_including_a_default(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        assert "default" in responses, (path, method)
        for status, answer in responses.items():
            if status == "default" or int(status) >= 400:
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOutput"}
        if method == "post" and any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
            for status, answer in responses.items():
                replayed = "Idempotent-Replayed" in answer.get("headers", {})
                assert replayed is (status.startswith("2")), (path, status)


def test_inputs_carry_the_constraints_the_server_enforces(schema):
    components = schema["components"]["schemas"]
    redeem = schema["paths"]["/api/v1/codes/{code}/redeem/"]["post"]
    key = next(p for p in redeem["parameters"] if p["name"] == "Idempotency-Key")["schema"]
    assert (key["minLength"], key["maxLength"]) == (1, 255) and not re.search(key["pattern"], " padded")
    amount = components["RedeemInputRequest"]["properties"]["amount"]
    assert re.search(amount["pattern"], "80.00") and not any(re.search(amount["pattern"], bad) for bad in ("", ".", "-1"))
    assert components["UploadJsonInputRequest"]["properties"]["codes"]["minItems"] == 1
    for name in ("LockInputRequest", "UnlockInputRequest", "RedeemInputRequest", "AssignInputRequest"):
        assert "user_id" in components[name]["required"], name
        assert components[name]["properties"]["user_id"]["minLength"] == 1
    validate = schema["paths"]["/api/v1/codes/{code}/validate/"]["get"]["parameters"]
    assert next(p for p in validate if p["name"] == "user_id")["required"] is True
    assert components["SigningKeyInputRequest"]["properties"]["key"]["minLength"] == 32
    listing = {p["name"]: p for p in schema["paths"]["/api/v1/redemptions/"]["get"]["parameters"]}
    assert "nullable" not in listing["reversed"]["schema"]
    assert [variant["format"] for variant in listing["from"]["schema"]["anyOf"]] == ["date", "date-time"]
    book_codes = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/books/{book_id}/codes/"]["get"]["parameters"]}
    assert book_codes["user_id"]["maxLength"] == 255
    ordering = next(p for p in schema["paths"]["/api/v1/books/"]["get"]["parameters"] if p["name"] == "ordering")
    assert {"name", "-created_at"} <= set(ordering["schema"]["enum"])


def refers_to(prop: dict, name: str) -> bool:
    ref = prop.get("$ref") or prop.get("allOf", [{}])[0].get("$ref", "")
    return ref == f"#/components/schemas/{name}"


def test_answers_are_typed_to_their_values(schema):
    components = schema["components"]["schemas"]
    reason = components["ValidationOutput"]["properties"]["reason"]
    assert set(components["ValidationReasonEnum"]["enum"]) == {"ok", *USE_RULES, *ORDER_RULES}
    assert refers_to(reason, "ValidationReasonEnum")
    assert refers_to(components["JobOutput"]["properties"]["result"], "JobResultOutput")
    assert refers_to(components["ErrorBody"]["properties"]["details"], "ErrorDetailsOutput")
    field_errors = components["ErrorDetailsOutput"]["properties"]["errors"]
    assert field_errors["items"]["$ref"].endswith("/FieldErrorOutput")


def test_operations_show_examples_of_this_domain(schema):
    redeem = schema["paths"]["/api/v1/codes/{code}/redeem/"]["post"]
    request_example = next(iter(redeem["requestBody"]["content"]["application/json"]["examples"].values()))
    assert request_example["value"]["order_ref"] == "order-1001"
    assert (
        next(iter(redeem["responses"]["201"]["content"]["application/json"]["examples"].values()))["value"]["code"] == "VIP-001"
    )
    invalid = next(iter(redeem["responses"]["400"]["content"]["application/json"]["examples"].values()))["value"]
    assert invalid["error"]["details"]["errors"] == [{"field": "amount", "message": "A valid number is required."}]
    validate = schema["paths"]["/api/v1/codes/{code}/validate/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert {example["value"]["reason"] for example in validate["examples"].values()} == {"ok", "code_locked"}


def test_swagger_ui_is_served_with_local_assets(http):
    page = http.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "unpkg" not in html
    assert "/static/drf_spectacular_sidecar/" in html


@pytest.fixture
def fuzz_world(tenant, issued, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {scope: "100000/min" for scope in ("auth", "read", "write", "lookup_failed")},
    }
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=None, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="FUZZ-CODE", max_uses=None, redeemed_count=1)  # the redemption below
    redemption = RedemptionFactory(code=code, user_id="fuzzer")
    access = api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)["access"]
    return {"book": book, "code": code, "redemption": redemption, "headers": {"Authorization": f"Bearer {access}"}}


def known_good_cases(operation, world):
    """Requests that reach real objects (random ids almost never do), so success answers are checked too."""
    parameters = {
        "book_id": world["book"].pk,
        "code": world["code"].code,
        "redemption_id": world["redemption"].pk,
        "user_id": "fuzzer",
    }
    names = {p.name for p in operation.path_parameters}
    if not names <= set(parameters) or operation.method.upper() == "DELETE":
        return []
    path_parameters = {name: parameters[name] for name in names}
    bodies = {
        "/api/v1/books/": {"name": "Fuzzed"},
        "/api/v1/books/{book_id}/": {"description": "fuzzed"},
        "/api/v1/books/{book_id}/codes/generate/": {"count": 3},
        "/api/v1/books/{book_id}/codes/upload/": {"codes": ["FUZZ-UP-1"]},
        "/api/v1/books/{book_id}/assign/": {"user_id": "fuzzer"},
        "/api/v1/codes/{code}/assign/": {"user_id": "fuzzer"},
        "/api/v1/codes/{code}/lock/": {"user_id": "fuzzer"},
        "/api/v1/codes/{code}/unlock/": {"user_id": "fuzzer"},
        "/api/v1/codes/{code}/redeem/": {"user_id": "fuzzer", "amount": "10.00", "currency": "EUR"},
        "/api/v1/redemptions/{redemption_id}/reverse/": {"reason": "fuzz"},
    }
    query = {"user_id": "fuzzer"} if operation.path.endswith("/validate/") else None
    kwargs = {"path_parameters": path_parameters, "query": query}
    if operation.method.upper() in ("POST", "PATCH"):
        if operation.path not in bodies:
            return []
        kwargs.update(body=bodies[operation.path], media_type="application/json")
    return [operation.Case(**kwargs)]


@pytest.fixture
def keep_test_connection():
    """Calls through the raw WSGI app must not close the test's connection at request end (Django's test client
    does the same): that would end the test transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_schemathesis_finds_no_server_error_and_no_answer_against_the_schema(fuzz_world, keep_test_connection):
    app = get_wsgi_application()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", app)
    headers = fuzz_world["headers"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 24

    for operation in operations:
        for case in known_good_cases(operation, fuzz_world):
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            assert response.status_code < 300 or response.status_code == 409, (operation.label, response.text[:300])

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case):
                case.call_and_validate(headers=headers, checks=CHECKS)

            fuzz()


def test_the_export_workbook_is_a_real_xlsx(api, fuzz_world):
    from openpyxl import load_workbook

    response = api.get("/api/v1/redemptions/export/")
    assert response.status_code == 200
    assert load_workbook(io.BytesIO(response.content), read_only=True).worksheets
