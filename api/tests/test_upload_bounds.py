"""Uploaded spreadsheets through the API: the book looked up first, a bomb refused with a 4xx JSON answer and flat
peak memory, a large file parsed in the job (SPEC "Code generation and upload")."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.services import api_tokens_issue
from books.models import Code
from books.tests.spreadsheets import empty_rows_bomb, xlsx_of
from books.tests.upload_probe import PEAK_GROWTH_LIMIT_KIB, probe
from core.models import Job
from tests.factories import CouponBookFactory

from .conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return empty_rows_bomb(30_000_000)


def upload(api, book_id, data: bytes, name="codes.xlsx", **fields):
    return api.post(
        f"/api/v1/books/{book_id}/codes/upload/",
        {"file": SimpleUploadedFile(name, data, content_type="application/octet-stream"), **fields},
        format="multipart",
    )


def test_a_bomb_answers_413_json_and_stores_nothing(api, active_book, bomb):
    error = assert_error(upload(api, active_book.pk, bomb), 413, "request_too_large")
    assert "inflates" in error["message"]
    assert not Code.objects.exists() and not Job.objects.exists()


def test_the_book_is_looked_up_before_the_file_is_read(api, other_tenant, bomb, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the file was inspected for a book the caller cannot see")

    monkeypatch.setattr("books.services.code_creation.upload_inspect", must_not_run)
    foreign = CouponBookFactory(tenant=other_tenant)
    assert_error(upload(api, foreign.pk, bomb), 404, "book_not_found")
    assert_error(upload(api, 999_999, bomb), 404, "book_not_found")


def test_a_large_file_is_parsed_in_the_job(api, active_book, settings, eager_celery, django_capture_on_commit_callbacks):
    settings.COUPONS = {**settings.COUPONS, "SYNC_UPLOAD_BYTES": 1000}
    data = xlsx_of([["code"]] + [[f"BULK-{n:05d}"] for n in range(300)])
    with django_capture_on_commit_callbacks(execute=True):
        answer = upload(api, active_book.pk, data)
    assert answer.status_code == 202, answer.content
    job = Job.objects.get(pk=answer.json()["id"])
    assert (job.status, job.total, job.done, job.params["file_format"]) == ("succeeded", 300, 300, "xlsx")
    assert Code.objects.filter(book=active_book).count() == 300


def test_a_large_file_with_bad_rows_fails_its_job_and_imports_nothing(
    api, active_book, settings, eager_celery, django_capture_on_commit_callbacks
):
    settings.COUPONS = {**settings.COUPONS, "SYNC_UPLOAD_BYTES": 100}
    data = b"code\n" + b"".join(b"OK-%04d\n" % n for n in range(40)) + b"not a code!\n"
    with django_capture_on_commit_callbacks(execute=True):
        answer = upload(api, active_book.pk, data, name="codes.csv")
    assert answer.status_code == 202
    job = Job.objects.get(pk=answer.json()["id"])
    assert job.status == "failed" and job.result["error"]["code"] == "invalid_codes"
    assert not Code.objects.filter(book=active_book).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_api_upload_of_a_bomb_keeps_the_process_peak_memory_flat(issued, bomb, tmp_path):
    """Before: the previous reader grew the peak by 303 MB (and took 26 s) on 3,000,000 empty rows; this bomb has 30M."""
    book = CouponBookFactory(tenant=issued.client.tenant)
    token = api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)["access"]
    result = probe("api", bomb, book.pk, token, tmp_path)
    assert result["status"] == 413 and result["content_type"].startswith("application/json"), result["body"][:500]
    growth = result["peak_after_kib"] - result["peak_before_kib"]
    print(f"peak memory: {result['peak_before_kib']} KiB before the request, grew by {growth} KiB")
    assert growth < PEAK_GROWTH_LIMIT_KIB, result
    assert not Code.objects.filter(book=book).exists()
