"""Spreadsheets are hostile input (SPEC "Code generation and upload"): bounds checked before parsing, parsing in a
stream, the same bounds in the admin import, and preview files that do not pile up. The API's side is in
api/tests/test_upload_bounds.py; both use the bombs of books/tests/spreadsheets.py."""

import io
import os
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from backoffice.tasks import PREVIEW_FOLDER, purge_import_previews
from books.models import Code
from books.parsers import codes_from_file, upload_inspect
from core.exceptions import ApplicationError
from tenants.models import Role
from tests.factories import CouponBookFactory
from tests.helpers import logged_in, staff_user

from .spreadsheets import declared_rows_sheet, empty_rows_bomb, huge_shared_string_bomb, inflated_size, xlsx_of
from .upload_probe import PEAK_GROWTH_LIMIT_KIB, probe

BOMB_ROWS = 30_000_000  # 180 MB of <row/> inflated, about 200 KB compressed


@pytest.fixture(scope="module")
def rows_bomb() -> bytes:
    return empty_rows_bomb(BOMB_ROWS)


# --- The reader: bounds before parsing, a stream within them ------------------------------------------------------


def test_an_empty_rows_bomb_is_refused_from_the_zip_directory(rows_bomb):
    assert len(rows_bomb) < 1024 * 1024 and inflated_size(rows_bomb) > 150 * 1024 * 1024
    with pytest.raises(ApplicationError) as refused:
        codes_from_file(data=rows_bomb, filename="codes.xlsx")
    assert refused.value.code == "request_too_large" and "inflates" in refused.value.message


def test_a_huge_shared_string_is_refused_before_parsing():
    bomb = huge_shared_string_bomb(200 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    with pytest.raises(ApplicationError) as refused:
        upload_inspect(io.BytesIO(bomb), "codes.xlsx")
    assert refused.value.code == "request_too_large"


def test_the_inflated_total_is_bounded(settings):
    settings.COUPONS = {**settings.COUPONS, "UPLOAD_MAX_INFLATED_BYTES": 20_000}
    honest = xlsx_of([[f"CODE-{n:05d}"] for n in range(2000)])
    with pytest.raises(ApplicationError) as refused:
        upload_inspect(io.BytesIO(honest), "codes.xlsx")
    assert refused.value.code == "request_too_large" and refused.value.details["limit"] == 20_000


def test_a_declared_row_count_past_the_bound_is_refused_before_parsing():
    with pytest.raises(ApplicationError) as refused:
        upload_inspect(io.BytesIO(declared_rows_sheet(50_000_000)), "codes.xlsx")
    assert "declares 50,000,000 rows" in refused.value.message


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_parsing_stops_at_the_row_bound_empty_rows_included(settings, kind):
    settings.COUPONS = {**settings.COUPONS, "MAX_CODES_PER_REQUEST": 100}
    # A header, one code, then empty rows: they count, so a file of nothing but empty rows cannot run for ever.
    rows = [["code"], ["CODE-1"]] + [[None]] * 200
    data = xlsx_of(rows) if kind == "xlsx" else b"code\nCODE-1\n" + b"\n" * 200
    with pytest.raises(ApplicationError) as refused:
        codes_from_file(data=data, filename=f"codes.{kind}")
    assert refused.value.code == "request_too_large"
    assert codes_from_file(data=xlsx_of(rows[:90]) if kind == "xlsx" else b"code\nCODE-1\n\n\n", filename=f"x.{kind}") == [
        "CODE-1"
    ]


def test_the_code_column_is_the_one_headed_code_else_the_first():
    assert codes_from_file(data=b"name,code\nAnn,CODE-1\nBob,CODE-2\n") == ["CODE-1", "CODE-2"]
    assert codes_from_file(data=b"CODE-1,x\nCODE-2,y\n") == ["CODE-1", "CODE-2"]
    assert codes_from_file(data=xlsx_of([["note", "Code"], ["a", "X-123"], ["b", 123456.0]])) == ["X-123", "123456"]


# --- The admin import: the same bounds, bounded memory, no preview files left behind -----------------------------


def _admin_import(client, book, data: bytes, name="codes.xlsx", fmt="1"):
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(
        reverse("admin:books_code_import"), {"book": book.pk, "import_file": upload, "format": fmt, "resource": "0"}
    )


def _preview_files() -> list[str]:
    try:
        return default_storage.listdir(PREVIEW_FOLDER)[1]
    except FileNotFoundError:
        return []


@pytest.mark.django_db
def test_the_admin_import_refuses_a_bomb_with_a_form_error_and_keeps_no_file(client, book, rows_bomb):
    logged_in(client, book.tenant, Role.MARKETING)
    before = set(_preview_files())
    answer = _admin_import(client, book, rows_bomb)
    assert answer.status_code == 200
    assert "inflates" in answer.content.decode()
    assert "confirm_form" not in answer.context
    assert set(_preview_files()) == before
    assert not Code.objects.filter(book=book).exists()


@pytest.mark.django_db
def test_the_admin_import_has_the_api_size_limit(client, book, settings):
    settings.COUPONS = {**settings.COUPONS, "API_UPLOAD_MAX_BYTES": 1000}
    logged_in(client, book.tenant, Role.MARKETING)
    answer = _admin_import(client, book, b"code\n" + b"CODE-12345\n" * 200, name="codes.csv", fmt="0")
    assert "An upload is at most 1,000 bytes" in answer.content.decode()


@pytest.mark.django_db
def test_an_unreadable_file_leaves_no_preview_file(client, book, settings):
    settings.COUPONS = {**settings.COUPONS, "MAX_CODES_PER_REQUEST": 10}
    logged_in(client, book.tenant, Role.MARKETING)
    before = set(_preview_files())
    answer = _admin_import(client, book, b"code\n" + b"".join(b"CODE-%05d\n" % n for n in range(50)), name="c.csv", fmt="0")
    assert "at most 10 codes" in answer.content.decode()
    assert set(_preview_files()) == before


@pytest.mark.django_db
def test_a_confirmed_preview_deletes_its_file(client, book):
    logged_in(client, book.tenant, Role.MARKETING)
    before = set(_preview_files())
    preview = _admin_import(client, book, b"code\nALPHA-1\nBETA-2\n", name="c.csv", fmt="0")
    assert len(set(_preview_files()) - before) == 1
    form = preview.context["confirm_form"]
    data = {name: form.initial.get(name, "") for name in form.fields}
    client.post(reverse("admin:books_code_process_import"), data, follow=True)
    assert Code.objects.filter(book=book).count() == 2
    assert set(_preview_files()) == before


def test_abandoned_previews_are_purged_by_beat(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.COUPONS = {**settings.COUPONS, "IMPORT_PREVIEW_MAX_AGE_HOURS": 6}
    old = default_storage.save(f"{PREVIEW_FOLDER}/abandoned", ContentFile(b"code\nX-1\n"))
    fresh = default_storage.save(f"{PREVIEW_FOLDER}/waiting", ContentFile(b"code\nX-2\n"))
    stale = (default_storage.get_modified_time(old) - timedelta(hours=7)).timestamp()
    os.utime(default_storage.path(old), (stale, stale))
    assert purge_import_previews() == 1
    assert not default_storage.exists(old) and default_storage.exists(fresh)


# --- Peak memory of a whole request, measured in a fresh process -------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_admin_import_of_a_bomb_keeps_the_process_peak_memory_flat(client, tenant, rows_bomb, tmp_path):
    book = CouponBookFactory(tenant=tenant)
    client.force_login(staff_user(tenant, Role.MARKETING))
    result = probe("admin", rows_bomb, book.pk, client.cookies["sessionid"].value, tmp_path)
    assert result["status"] == 200 and "inflates" in result["body"]
    growth = result["peak_after_kib"] - result["peak_before_kib"]
    print(f"peak memory: {result['peak_before_kib']} KiB before the request, grew by {growth} KiB")
    assert growth < PEAK_GROWTH_LIMIT_KIB, result
    assert not Code.objects.filter(book=book).exists()


@pytest.mark.django_db
def test_a_large_admin_upload_skips_the_preview_and_runs_as_a_job(client, book, settings, django_capture_on_commit_callbacks):
    from core.models import Job
    from coupons_site.celery import app

    settings.COUPONS = {**settings.COUPONS, "SYNC_UPLOAD_BYTES": 1000}
    logged_in(client, book.tenant, Role.MARKETING)
    data = xlsx_of([["code"]] + [[f"BIG-{n:05d}"] for n in range(500)])
    previous, app.conf.task_always_eager = app.conf.task_always_eager, True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            answer = _admin_import(client, book, data)
    finally:
        app.conf.task_always_eager = previous
    job = Job.objects.get(book=book)
    assert answer.status_code == 302 and answer["Location"] == reverse("admin:core_job_change", args=[job.pk])
    job.refresh_from_db()
    assert (job.status, job.total) == ("succeeded", 500)
    assert Code.objects.filter(book=book).count() == 500
