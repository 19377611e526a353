"""The error contract: JSON everywhere, never a 500 for what a client sends, 413/415/429/503 with their headers."""

import json

import pytest
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def test_unknown_api_paths_answer_json_404(api, http):
    for path in ("/api/v1/nothing/", "/api/v1/books", "/api/v2/books/", "/api/"):
        assert_error(http.get(path), 404, "not_found")
        assert_error(api.post(path, {}, format="json"), 404, "not_found")


def test_a_wrong_method_answers_405_json(api):
    assert_error(api.put("/api/v1/books/", {}, format="json"), 405, "method_not_allowed")


def test_broken_json_answers_400_parse_error(api):
    response = api.post("/api/v1/books/", data=b'{"name": "x",', content_type="application/json")
    assert_error(response, 400, "parse_error")
    response = api.post("/api/v1/books/", data=b"\xff\xfe\x00garbage", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_another_media_type_answers_415(api):
    response = api.post("/api/v1/books/", data="name=x", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_an_accept_header_we_cannot_serve_still_gets_json(api):
    response = api.get("/api/v1/books/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


def test_nul_bytes_in_json_strings_answer_400(api, active_book):
    body = json.dumps({"name": "a\x00b"})
    assert_error(api.post("/api/v1/books/", data=body, content_type="application/json"), 400, "invalid_input")
    assert_error(api.get("/api/v1/books/", {"search": "a\x00"}), 400, "invalid_input")


def test_an_oversized_body_answers_413_json(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "x", "description": "d" * 2000})
    assert_error(api.post("/api/v1/books/", data=body, content_type="application/json"), 413, "request_too_large")


def test_an_oversized_upload_file_answers_413_json(api, active_book, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.API_UPLOAD_MAX_BYTES = 500
    upload = SimpleUploadedFile("codes.csv", b"code\n" + b"ABCDEF\n" * 200, content_type="text/csv")
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/upload/", {"file": upload}, format="multipart")
    assert_error(response, 413, "request_too_large")


def test_deeply_nested_json_answers_400_not_500(api):
    body = "[" * 100_000 + "]" * 100_000
    response = api.post("/api/v1/books/", data=body, content_type="application/json")
    assert response.status_code == 400


# --- Database unavailability ----------------------------------------------------------------------------------


def _database_down(execute, sql, params, many, context):
    raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


def test_healthz_reports_the_database():
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_answers_503_when_the_database_is_down():
    with connection.execute_wrapper(_database_down):
        response = APIClient().get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
    assert response["Retry-After"]


def test_a_database_outage_during_an_api_call_answers_503_json(api, active_book):
    with connection.execute_wrapper(_database_down):
        response = api.get(f"/api/v1/books/{active_book.pk}/")
        post = api.post(f"/api/v1/books/{active_book.pk}/assign/", {"user_id": "u"}, format="json")
    for answer in (response, post):
        assert_error(answer, 503, "service_unavailable")
        assert int(answer["Retry-After"]) > 0


# --- Throttling -----------------------------------------------------------------------------------------------


@pytest.fixture
def low_rates(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "auth": "3/min",
            "read": "3/min",
            "write": "2/min",
            "lookup_failed": "2/min",
            "lookup_failed_client": "2/min",
        },
    }


def test_reads_past_the_rate_answer_429_with_retry_after(api, low_rates):
    for _ in range(3):
        assert api.get("/api/v1/books/").status_code == 200
    error = assert_error(api.get("/api/v1/books/"), 429, "throttled")
    response = api.get("/api/v1/books/")
    assert 0 < int(response["Retry-After"]) <= 60
    assert error["details"]["retry_after"] > 0


def test_rates_count_per_client_and_scope(api, other_api, low_rates):
    for _ in range(3):
        api.get("/api/v1/books/")
    assert api.get("/api/v1/books/").status_code == 429
    assert other_api.get("/api/v1/books/").status_code == 200  # another client has its own counter
    assert api.post("/api/v1/books/", {"name": "Still writable"}, format="json").status_code == 201  # the write scope


def test_failed_code_lookups_are_throttled_sooner(api, make_code, low_rates):
    code = make_code(user_id="bob")
    assert_error(api.get("/api/v1/codes/GUESS-1/"), 404, "code_not_found")
    assert_error(api.get("/api/v1/codes/GUESS-2/"), 404, "code_not_found")
    # Two failed look-ups used the allowance: even a real code is refused until the window passes.
    response = api.get(f"/api/v1/codes/{code.code}/")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_the_token_endpoint_is_throttled(http, issued, low_rates):
    body = {"client_id": issued.client.client_id, "client_secret": "wrong"}
    for _ in range(3):
        assert http.post("/api/v1/auth/token/", body, format="json").status_code == 401
    response = http.post("/api/v1/auth/token/", body, format="json")
    assert_error(response, 429, "throttled")
    assert response["Retry-After"]


def test_the_500_handler_answers_json_under_api_and_503_for_a_database_error(rf):
    from api.views.errors import not_found, server_error

    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        unavailable = server_error(rf.get("/admin/"))
    assert unavailable.status_code == 503 and json.loads(unavailable.content)["error"]["code"] == "service_unavailable"
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        crashed = server_error(rf.get("/api/v1/books/"))
    assert crashed.status_code == 500 and json.loads(crashed.content)["error"]["code"] == "server_error"
    missing = not_found(rf.get("/api/v1/nope/"))
    assert missing.status_code == 404 and json.loads(missing.content)["error"]["code"] == "not_found"
