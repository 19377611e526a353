"""Books over the API: CRUD with filters, ordering and pagination; stats; generation; upload; codes; random assignment."""

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from openpyxl import Workbook

from books.models import Code, CouponBook, Event
from core.models import Job
from tests.factories import CodeFactory, CouponBookFactory, RedemptionFactory

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def test_create_read_update_a_book(api, tenant):
    body = {
        "name": "Black Friday",
        "status": "active",
        "discount_type": "fixed",
        "discount_value": "5.00",
        "currency": "eur",
        "product_ids": ["sku-1", "sku-2"],
        "valid_until": "2030-01-01T00:00:00Z",
        "max_codes_per_user": None,
        "uses_per_code": 3,
        "requires_assignment": False,
    }
    created = api.post("/api/v1/books/", body, format="json")
    assert created.status_code == 201, created.json()
    book = created.json()
    assert book["currency"] == "EUR" and book["uses_per_code"] == 3 and book["max_codes_per_user"] is None
    stored = CouponBook.objects.get(pk=book["id"])
    assert stored.tenant == tenant and stored.product_ids == ["sku-1", "sku-2"]
    assert api.get(f"/api/v1/books/{book['id']}/").json()["name"] == "Black Friday"
    patched = api.patch(f"/api/v1/books/{book['id']}/", {"status": "paused", "description": "Paused for now"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["status"] == "paused" and patched.json()["name"] == "Black Friday"


def test_a_rule_broken_across_fields_answers_400(api):
    response = api.post("/api/v1/books/", {"name": "x", "discount_type": "fixed", "discount_value": "5"}, format="json")
    assert_error(response, 400, "invalid_input")
    assert not CouponBook.objects.exists()


def test_delete_archives_a_book_with_codes_and_deletes_an_empty_one(api, active_book):
    CodeFactory(book=active_book)
    response = api.delete(f"/api/v1/books/{active_book.pk}/")
    assert response.status_code == 200 and response.json()["status"] == "archived"
    empty = CouponBookFactory(tenant=active_book.tenant)
    assert api.delete(f"/api/v1/books/{empty.pk}/").status_code == 204
    assert not CouponBook.objects.filter(pk=empty.pk).exists()
    assert_error(api.patch(f"/api/v1/books/{active_book.pk}/", {"name": "again"}, format="json"), 409, "book_archived")


def test_list_filters_ordering_and_pagination(api, tenant):
    now = timezone.now()
    CouponBookFactory(tenant=tenant, name="Alpha spring", status="active", valid_until=now + timedelta(days=30))
    CouponBookFactory(tenant=tenant, name="Beta", status="paused", description="spring leftovers")
    CouponBookFactory(tenant=tenant, name="Gamma", status="active", valid_until=now - timedelta(days=3))
    CouponBookFactory(tenant=tenant, name="Delta", status="draft")

    def names(**query):
        response = api.get("/api/v1/books/", query)
        assert response.status_code == 200, response.json()
        return [b["name"] for b in response.json()["results"]]

    assert names(status="active", ordering="name") == ["Alpha spring", "Gamma"]
    assert names(search="spring", ordering="name") == ["Alpha spring", "Beta"]
    assert names(active_on=now.date().isoformat()) == ["Alpha spring"]
    assert names(ordering="-name") == ["Gamma", "Delta", "Beta", "Alpha spring"]
    page = api.get("/api/v1/books/", {"ordering": "name", "page_size": 3}).json()
    assert page["count"] == 4 and len(page["results"]) == 3 and page["next"]
    assert [b["name"] for b in api.get(page["next"]).json()["results"]] == ["Gamma"]


def test_stats_count_codes_and_redemptions_per_day(api, active_book):
    CodeFactory(book=active_book)
    redeemed = CodeFactory(book=active_book, state="redeemed", redeemed_count=1, user_id="u", max_uses=1)
    RedemptionFactory(code=redeemed, user_id="u", discount="2.50", currency="EUR")
    RedemptionFactory(code=CodeFactory(book=active_book), user_id="v", discount="1.25", currency="USD")
    RedemptionFactory(code=CodeFactory(book=active_book), user_id="w", discount="4.00", currency="EUR")
    stats = api.get(f"/api/v1/books/{active_book.pk}/stats/").json()
    assert stats["codes"] == {"free": 3, "assigned": 0, "redeemed": 1, "voided": 0, "total": 4}
    assert stats["redemptions"] == 3
    # Money per currency, never one sum across currencies.
    expected = [{"currency": "EUR", "discount": "6.50"}, {"currency": "USD", "discount": "1.25"}]
    assert stats["discount_totals"] == expected
    assert [(day["redemptions"], day["discounts"]) for day in stats["per_day"]] == [(3, expected)]


def test_generate_creates_exactly_count_codes(api, active_book):
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/generate/", {"count": 25, "pattern": "SALE-######"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 25
    codes = list(Code.objects.filter(book=active_book).values_list("code", flat=True))
    assert len(codes) == 25 and all(c.startswith("SALE-") and len(c) == 11 for c in codes)


def test_generate_refuses_a_pattern_too_small(api, active_book):
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/generate/", {"count": 20, "pattern": "X#"}, format="json")
    error = assert_error(response, 400)
    assert error["code"] in {"invalid_pattern", "pattern_space_too_small"}
    assert not Code.objects.exists()


def test_a_large_generation_answers_202_with_a_job_that_does_the_work(
    api, active_book, settings, eager_celery, django_capture_on_commit_callbacks
):
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 10}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/books/{active_book.pk}/codes/generate/", {"count": 40}, format="json")
    assert response.status_code == 202, response.json()
    job = response.json()
    assert job["kind"] == "generate" and job["total"] == 40
    done = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert done["status"] == "succeeded" and done["done"] == 40 and done["result"]["created"] == 40
    assert Code.objects.filter(book=active_book).count() == 40


def test_upload_a_json_list(api, active_book):
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/upload/", {"codes": [" abc-123 ", "XYZ_9"]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 2
    assert set(Code.objects.filter(book=active_book).values_list("code", flat=True)) == {"ABC-123", "XYZ_9"}
    assert Event.objects.filter(book=active_book, kind="uploaded").count() == 1


def test_an_upload_with_duplicates_is_refused_whole_or_imported_minus_them(api, active_book):
    CodeFactory(book=active_book, code="TAKEN-1")
    url = f"/api/v1/books/{active_book.pk}/codes/upload/"
    refused = api.post(url, {"codes": ["NEW-1", "TAKEN-1", "NEW-2", "new-2"]}, format="json")
    error = assert_error(refused, 409, "duplicate_codes")
    assert set(error["details"]["codes"]) == {"TAKEN-1", "NEW-2"}
    assert Code.objects.count() == 1
    skipped = api.post(url, {"codes": ["NEW-1", "TAKEN-1", "NEW-2"], "skip_duplicates": True}, format="json")
    assert skipped.status_code == 201
    assert skipped.json()["created"] == 2 and skipped.json()["skipped"] == ["TAKEN-1"]


def test_upload_a_csv_file_with_a_header(api, active_book):
    upload = SimpleUploadedFile("codes.csv", b"code,note\nCSV-1,first\n\ncsv-2,second\n", content_type="text/csv")
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/upload/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert set(Code.objects.values_list("code", flat=True)) == {"CSV-1", "CSV-2"}


def test_upload_an_xlsx_file(api, active_book):
    workbook = Workbook()
    sheet = workbook.active
    for row in (["Code"], ["XL-1"], [123456], ["xl-3"]):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    upload = SimpleUploadedFile("codes.xlsx", buffer.getvalue())
    response = api.post(
        f"/api/v1/books/{active_book.pk}/codes/upload/", {"file": upload, "skip_duplicates": "true"}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    assert set(Code.objects.values_list("code", flat=True)) == {"XL-1", "123456", "XL-3"}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("junk.xlsx", b"PK\x03\x04not really a zip"),
        ("junk.csv", b"\xff\xfe\xfa binary"),
        ("empty.csv", b""),
        ("bad.csv", b"code\n!!\n"),
    ],
)
def test_unreadable_or_invalid_files_answer_400(api, active_book, name, content):
    upload = SimpleUploadedFile(name, content)
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/upload/", {"file": upload}, format="multipart")
    error = assert_error(response, 400)
    assert error["code"] in {"invalid_input", "invalid_codes", "empty_upload"}
    assert not Code.objects.exists()


def test_book_codes_are_filtered_and_paginated_by_cursor(api, active_book):
    for n in range(5):
        CodeFactory(book=active_book, code=f"LIST-{n}")
    CodeFactory(book=active_book, code="HELD-1", user_id="ann", state="assigned")
    url = f"/api/v1/books/{active_book.pk}/codes/"
    assert [c["code"] for c in api.get(url, {"user_id": "ann"}).json()["results"]] == ["HELD-1"]
    assert len(api.get(url, {"state": "free"}).json()["results"]) == 5
    first = api.get(url, {"page_size": 4}).json()
    assert len(first["results"]) == 4 and first["next"]
    assert len(api.get(first["next"]).json()["results"]) == 2


def test_assign_random_gives_a_free_code_then_refuses_past_the_limit(api, active_book):
    for n in range(3):
        CodeFactory(book=active_book, code=f"RAND-{n}")
    url = f"/api/v1/books/{active_book.pk}/assign/"
    response = api.post(url, {"user_id": "zoe"}, format="json")
    assert response.status_code == 201
    assert response.json()["user_id"] == "zoe" and response.json()["state"] == "assigned"
    assert Code.objects.get(code=response.json()["code"]).user_id == "zoe"
    assert_error(api.post(url, {"user_id": "zoe"}, format="json"), 409, "user_code_limit_reached")


def test_assign_random_in_an_exhausted_book_answers_409(api, active_book):
    assert_error(api.post(f"/api/v1/books/{active_book.pk}/assign/", {"user_id": "x"}, format="json"), 409, "book_exhausted")


def test_jobs_are_tenant_scoped_and_report_progress(api, other_api, tenant):
    job = Job.objects.create(tenant=tenant, kind=Job.Kind.UPLOAD, actor_type="system", total=10, done=4)
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "pending" and body["done"] == 4 and body["total"] == 10 and body["download_url"] is None
    assert_error(other_api.get(f"/api/v1/jobs/{job.pk}/"), 404, "job_not_found")
    assert_error(api.get(f"/api/v1/jobs/{job.pk}/file/"), 404, "job_not_found")
