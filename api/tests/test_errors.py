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


def test_an_accept_header_we_cannot_serve_answers_406_json(api):
    assert_error(api.get("/api/v1/books/", HTTP_ACCEPT="application/xml"), 406, "not_acceptable")
    assert_error(api.post("/api/v1/books/", {"name": "x"}, format="json", HTTP_ACCEPT="text/csv"), 406, "not_acceptable")
    for accept in ("application/json", "application/*", "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"):
        response = api.get("/api/v1/books/", HTTP_ACCEPT=accept)
        assert response.status_code == 200, accept
        assert response["Content-Type"].startswith("application/json")


def test_the_export_serves_an_accept_header_naming_the_workbook_and_refuses_others(api):
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = api.get("/api/v1/redemptions/export/", HTTP_ACCEPT=xlsx)
    assert response.status_code == 200
    assert response["Content-Type"] == xlsx
    assert_error(api.get("/api/v1/redemptions/export/", HTTP_ACCEPT="text/csv"), 406, "not_acceptable")


def test_an_unexpected_fault_in_a_request_answers_500_json(api, monkeypatch):
    """A bug reached by a real request (not the handler called by hand) answers the JSON server_error."""
    from api.views import books

    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(books.BookListView, "get", crash)
    api.raise_request_exception = False  # as in production: the handler answers instead of the test raising
    response = api.get("/api/v1/books/")
    assert_error(response, 500, "server_error")


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

    settings.COUPONS = {**settings.COUPONS, "API_UPLOAD_MAX_BYTES": 500}
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
    assert response.json()["database"] == "ok"


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


def test_invalid_input_details_name_each_field_path_with_a_message(api, active_book):
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/upload/", {"codes": ["OK-CODE-1", 7, "OK-2", 8]}, format="json")
    error = assert_error(response, 400, "invalid_input")
    assert error["details"]["field"] == "codes.1"
    assert [entry["field"] for entry in error["details"]["errors"]] == ["codes.1", "codes.3"]

    response = api.post("/api/v1/codes/ANY-CODE/redeem/", {"user_id": "u1", "amount": "many"}, format="json")
    error = assert_error(response, 400, "invalid_input")
    assert error["details"] == {"field": "amount", "errors": [{"field": "amount", "message": "A valid number is required."}]}
    assert error["message"] == "amount: A valid number is required."

    response = api.post("/api/v1/books/", {"discount_value": "-1"}, format="json")
    error = assert_error(response, 400, "invalid_input")
    assert {entry["field"] for entry in error["details"]["errors"]} == {"name", "discount_value"}


def test_a_service_refusal_of_input_has_the_same_details_shape(api, active_book):
    # The service (not the serializer) checks that an RS256 key is an RSA public key.
    response = api.post("/api/v1/end-user-keys/", {"name": "k", "algorithm": "RS256", "key": "not a PEM key " * 4}, format="json")
    error = assert_error(response, 400, "invalid_input")
    assert error["details"]["field"] == "key"
    upload = f"/api/v1/books/{active_book.pk}/codes/upload/"
    response = api.post(upload, {"codes": ["A1B2"]}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256)
    assert assert_error(response, 400, "invalid_input")["details"]["field"] == "Idempotency-Key"


def test_ids_in_error_details_are_integers(api, active_book):
    assert assert_error(api.get("/api/v1/books/987654/"), 404, "book_not_found")["details"] == {"book": 987654}
    assert assert_error(api.get("/api/v1/jobs/987654/"), 404, "job_not_found")["details"] == {"job": 987654}
    response = api.post("/api/v1/redemptions/987654/reverse/", {}, format="json")
    assert assert_error(response, 404, "redemption_not_found")["details"] == {"redemption": 987654}
    active_book.status = "paused"
    active_book.save(update_fields=["status"])
    response = api.post(f"/api/v1/books/{active_book.pk}/assign/", {"user_id": "u1"}, format="json")
    assert assert_error(response, 409, "book_not_active")["details"]["book"] == active_book.pk


def test_the_server_refuses_exactly_what_the_schema_forbids(api, active_book, make_code):
    make_code(user_id="u1")
    books = "/api/v1/books/"
    for bad in ("0", "-1", "x", "1.5", ""):
        assert_error(api.get(books, {"page": bad}), 400, "invalid_input")
    for bad in ("0", "501", "null", "x", ""):
        assert_error(api.get(books, {"page_size": bad}), 400, "invalid_input")
    assert api.get(books, {"page_size": "500"}).status_code == 200
    past_the_end = api.get(books, {"page": "40"})
    assert past_the_end.status_code == 200 and past_the_end.json()["results"] == [] and past_the_end.json()["count"] == 1
    assert past_the_end.json()["previous"] == "http://testserver/api/v1/books/" and past_the_end.json()["next"] is None
    assert_error(api.get(f"/api/v1/books/{active_book.pk}/codes/", {"page_size": "1001"}), 400, "invalid_input")
    assert_error(api.get(books, {"ordering": "tenant"}), 400, "invalid_input")
    codes = f"/api/v1/books/{active_book.pk}/codes/"
    assert_error(api.get(codes, {"user_id": "u" * 256}), 400, "invalid_input")
    assert api.get(codes, {"user_id": "u" * 255}).status_code == 200
    assert api.get(books, {"ordering": "-name"}).status_code == 200
    assert_error(api.get("/api/v1/redemptions/", {"reversed": "null"}), 400, "invalid_input")
    assert api.get("/api/v1/redemptions/", {"from": "2026-03-01", "to": "2026-03-31T12:00:00Z"}).status_code == 200
    assert_error(api.get("/api/v1/redemptions/", {"from": "March"}), 400, "invalid_input")

    upload = f"/api/v1/books/{active_book.pk}/codes/upload/"
    assert assert_error(api.post(upload, {"codes": []}, format="json"), 400)["details"]["field"] == "codes"
    for amount in ("", ".", "1.234"):
        response = api.post("/api/v1/codes/ANY-CODE/redeem/", {"user_id": "u1", "amount": amount}, format="json")
        assert assert_error(response, 400, "invalid_input")["details"]["field"] == "amount"
    for path in ("lock", "unlock", "redeem"):
        response = api.post(f"/api/v1/codes/ANY-CODE/{path}/", {}, format="json")
        assert assert_error(response, 400, "invalid_input")["details"]["field"] == "user_id"
    assert assert_error(api.get("/api/v1/codes/ANY-CODE/validate/"), 400)["details"]["field"] == "user_id"
    short_key = {"name": "k", "algorithm": "HS256", "key": "k" * 31}
    assert assert_error(api.post("/api/v1/end-user-keys/", short_key, format="json"), 400)["details"]["field"] == "key"
    for key in ("", " padded", "\u00e9t\u00e9", "k" * 256):
        response = api.post(upload, {"codes": ["A1B2"]}, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert_error(response, 400, "invalid_input")


def test_an_end_user_may_leave_out_their_own_user_id(end_user, make_code):
    code = make_code(user_id=end_user.user_id)
    assert end_user.post(f"/api/v1/codes/{code.code}/lock/", {}, format="json").status_code == 201
    assert end_user.get(f"/api/v1/codes/{code.code}/validate/").json()["valid"] is True
    response = end_user.post(f"/api/v1/codes/{code.code}/lock/", {"user_id": "mallory"}, format="json")
    assert_error(response, 403, "permission_denied")
