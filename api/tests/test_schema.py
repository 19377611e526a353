"""The OpenAPI schema: it validates, documents every endpoint's errors, serves Swagger UI from local assets, and
a schemathesis run against it (bounded: a few examples per operation) finds no 5xx and no answer that
contradicts it."""

import io
import os

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

from api.services import api_tokens_issue
from books.factories import CodeFactory, CouponBookFactory, RedemptionFactory
from core.tests.documented_errors import documented_error_statuses

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
        "/api/v1/codes/{code}/redeem/": {"user_id": "fuzzer", "amount": "10.00"},
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
