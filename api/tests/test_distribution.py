"""POST /books/{id}/distribute/: one code per user of a list, at once (201) or as a job (202) whose file is the CSV."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from books.models import Code, CouponBook
from books.services.code_creation import codes_insert
from books.tests.spreadsheets import xlsx_of
from core.models import Job
from tests.factories import CouponBookFactory

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def url(book_id) -> str:
    return f"/api/v1/books/{book_id}/distribute/"


def free_codes(book, count: int) -> None:
    codes_insert(book=book, codes=[f"API{book.pk}X{i:05d}" for i in range(count)])


def held(book) -> dict[str, str]:
    return dict(Code.objects.filter(book=book, user_id__isnull=False).values_list("user_id", "code"))


def test_a_json_list_answers_201_with_the_summary_and_every_row(api, active_book):
    # Given
    free_codes(active_book, 5)
    # When
    answer = api.post(url(active_book.pk), {"user_ids": ["ann", "bob", "", "ann"]}, format="json")
    # Then
    assert answer.status_code == 201, answer.content
    body = answer.json()
    codes = held(active_book)
    assert {key: body[key] for key in ("total", "assigned", "already_assigned", "invalid", "duplicates")} == {
        "total": 3,
        "assigned": 2,
        "already_assigned": 0,
        "invalid": 1,
        "duplicates": 1,
    }
    assert body["rows"] == [
        {"user_id": "ann", "code": codes["ann"], "status": "assigned"},
        {"user_id": "bob", "code": codes["bob"], "status": "assigned"},
        {"user_id": "", "code": None, "status": "invalid_user_id"},
    ]


def test_the_same_list_again_assigns_nothing_new_and_reports_each_code(api, active_book):
    free_codes(active_book, 5)
    first = api.post(url(active_book.pk), {"user_ids": ["ann", "bob"]}, format="json").json()
    again = api.post(url(active_book.pk), {"user_ids": ["bob", "ann"]}, format="json")
    assert again.status_code == 201
    body = again.json()
    assert (body["assigned"], body["already_assigned"]) == (0, 2)
    codes = {row["user_id"]: row["code"] for row in first["rows"]}
    assert body["rows"] == [{"user_id": u, "code": codes[u], "status": "already_assigned"} for u in ("bob", "ann")]
    assert Code.objects.filter(book=active_book, user_id__isnull=False).count() == 2


def test_an_idempotency_key_replays_the_first_answer(api, active_book):
    free_codes(active_book, 5)
    first = api.post(url(active_book.pk), {"user_ids": ["ann"]}, format="json", HTTP_IDEMPOTENCY_KEY="dist-1")
    replay = api.post(url(active_book.pk), {"user_ids": ["ann"]}, format="json", HTTP_IDEMPOTENCY_KEY="dist-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json() and first.json()["assigned"] == 1


def test_a_csv_file_is_read_from_its_user_id_column(api, active_book):
    free_codes(active_book, 5)
    data = b"email,user_id\na@x,ann\nb@x,bob\n"
    answer = api.post(url(active_book.pk), {"file": SimpleUploadedFile("list.csv", data)}, format="multipart")
    assert answer.status_code == 201, answer.content
    assert [row["user_id"] for row in answer.json()["rows"]] == ["ann", "bob"]


def test_an_exhausted_book_answers_409_and_assigns_nothing(api, active_book):
    free_codes(active_book, 1)
    error = assert_error(api.post(url(active_book.pk), {"user_ids": ["a", "b"]}, format="json"), 409, "book_exhausted")
    assert error["details"] == {"book": active_book.pk, "count": 2, "available": 1}
    assert held(active_book) == {}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"user_ids": []}, 400, "invalid_input"),
        ({"user_ids": [5]}, 400, "invalid_input"),
        ({"user_ids": "ann"}, 400, "invalid_input"),
        ({}, 400, "invalid_input"),
        ({"user_ids": ["", "  "]}, 400, "empty_upload"),
    ],
)
def test_bad_lists_answer_a_4xx_json_error(api, active_book, body, status, code):
    free_codes(active_book, 2)
    assert_error(api.post(url(active_book.pk), body, format="json"), status, code)
    assert held(active_book) == {}


def test_a_paused_book_answers_409(api, tenant):
    book = CouponBookFactory(tenant=tenant, status=CouponBook.Status.PAUSED)
    free_codes(book, 2)
    assert_error(api.post(url(book.pk), {"user_ids": ["a"]}, format="json"), 409, "book_not_active")


def test_another_tenants_book_is_not_found_and_its_file_never_read(api, other_tenant, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the file was read for a book the caller cannot see")

    monkeypatch.setattr("books.services.distribution.upload_inspect", must_not_run)
    foreign = CouponBookFactory(tenant=other_tenant)
    free_codes(foreign, 2)
    assert_error(api.post(url(foreign.pk), {"user_ids": ["a"]}, format="json"), 404, "book_not_found")
    answer = api.post(url(foreign.pk), {"file": SimpleUploadedFile("l.csv", b"a\n")}, format="multipart")
    assert_error(answer, 404, "book_not_found")
    assert held(foreign) == {}


def test_an_end_user_token_may_not_distribute(end_user, active_book):
    free_codes(active_book, 2)
    assert_error(end_user.post(url(active_book.pk), {"user_ids": ["alice"]}, format="json"), 403, "permission_denied")
    assert held(active_book) == {}


def test_a_large_list_answers_202_and_its_job_leaves_the_csv_to_download(
    api, other_api, active_book, settings, tmp_path, eager_celery, django_capture_on_commit_callbacks
):
    # Given a synchronous limit of 3 users, and one user already holding a code
    settings.COUPONS = {**settings.COUPONS, "SYNC_DISTRIBUTION_LIMIT": 3}
    settings.MEDIA_ROOT = tmp_path
    free_codes(active_book, 10)
    api.post(url(active_book.pk), {"user_ids": ["u2"]}, format="json")
    # When
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(url(active_book.pk), {"user_ids": ["u1", "u2", "u3", "", "u4", "u1"]}, format="json")
    # Then the job ran and its file is the CSV
    assert answer.status_code == 202, answer.content
    job = api.get(f"/api/v1/jobs/{answer.json()['id']}/").json()
    assert (job["kind"], job["status"], job["total"], job["done"]) == ("distribute", "succeeded", 4, 4)
    assert {k: job["result"][k] for k in ("assigned", "already_assigned", "invalid", "duplicates")} == {
        "assigned": 3,
        "already_assigned": 1,
        "invalid": 1,
        "duplicates": 1,
    }
    assert job["download_url"].endswith(f"/api/v1/jobs/{job['id']}/file/")
    download = api.get(f"/api/v1/jobs/{job['id']}/file/")
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"].startswith("attachment; filename=") and ".csv" in download["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    codes = held(active_book)
    assert rows == [
        ["user_id", "code", "status"],
        ["u1", codes["u1"], "assigned"],
        ["u2", codes["u2"], "already_assigned"],
        ["u3", codes["u3"], "assigned"],
        ["", "", "invalid_user_id"],
        ["u4", codes["u4"], "assigned"],
    ]
    # Accept: text/csv is served; another tenant does not see the job or its file.
    assert api.get(f"/api/v1/jobs/{job['id']}/file/", HTTP_ACCEPT="text/csv").status_code == 200
    only_bytes = api.get(f"/api/v1/jobs/{job['id']}/file/", HTTP_ACCEPT="application/octet-stream")
    assert only_bytes["Content-Type"] == "application/octet-stream"
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert_error(api.get(f"/api/v1/jobs/{job['id']}/file/", HTTP_ACCEPT=xlsx), 406, "not_acceptable")
    assert_error(other_api.get(f"/api/v1/jobs/{job['id']}/file/"), 404, "job_not_found")


def test_a_large_file_is_read_in_the_job(api, active_book, settings, tmp_path, eager_celery, django_capture_on_commit_callbacks):
    settings.COUPONS = {**settings.COUPONS, "SYNC_UPLOAD_BYTES": 1000}
    settings.MEDIA_ROOT = tmp_path
    free_codes(active_book, 300)
    data = xlsx_of([["user_id"]] + [[f"user-{n:04d}"] for n in range(250)])
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(url(active_book.pk), {"file": SimpleUploadedFile("list.xlsx", data)}, format="multipart")
    assert answer.status_code == 202, answer.content
    job = Job.objects.get(pk=answer.json()["id"])
    assert (job.status, job.total, job.done, job.params["file_format"]) == ("succeeded", 250, 250, "xlsx")
    assert len(held(active_book)) == 250
    assert job.file.name.endswith(".csv")


def test_an_exhausted_book_fails_the_job_with_the_error_and_assigns_nothing(
    api, active_book, settings, tmp_path, eager_celery, django_capture_on_commit_callbacks
):
    settings.COUPONS = {**settings.COUPONS, "SYNC_DISTRIBUTION_LIMIT": 1}
    settings.MEDIA_ROOT = tmp_path
    free_codes(active_book, 1)
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(url(active_book.pk), {"user_ids": ["a", "b"]}, format="json")
    job = api.get(f"/api/v1/jobs/{answer.json()['id']}/").json()
    assert job["status"] == "failed" and job["result"]["error"]["code"] == "book_exhausted"
    assert job["download_url"] is None
    assert held(active_book) == {}
