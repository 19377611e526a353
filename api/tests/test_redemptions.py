"""The redemption log over the API: list with filters, Excel export (at once, or a job), reversal."""

import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from books.models import Code
from redemptions.models import Redemption
from tests.factories import CodeFactory, CouponBookFactory, RedemptionFactory

from .conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(tenant, active_book):
    tz = ZoneInfo(tenant.timezone)
    other_book = CouponBookFactory(tenant=tenant)
    rows = {}
    for name, book, user, when in [
        ("jan", active_book, "ann", datetime(2026, 1, 10, 12, tzinfo=tz)),
        ("feb", active_book, "bob", datetime(2026, 2, 10, 23, 30, tzinfo=tz)),
        ("mar", other_book, "ann", datetime(2026, 3, 10, 9, tzinfo=tz)),
    ]:
        code = CodeFactory(book=book, user_id=user, state="redeemed", redeemed_count=1, max_uses=1)
        rows[name] = RedemptionFactory(code=code, user_id=user, redeemed_at=when)
    return rows


def ids(response):
    assert response.status_code == 200, response.json()
    return [r["id"] for r in response.json()["results"]]


def test_list_newest_first_with_filters(api, log, active_book):
    assert ids(api.get("/api/v1/redemptions/")) == [log["mar"].pk, log["feb"].pk, log["jan"].pk]
    assert ids(api.get("/api/v1/redemptions/", {"book": active_book.pk})) == [log["feb"].pk, log["jan"].pk]
    assert ids(api.get("/api/v1/redemptions/", {"user_id": "ann"})) == [log["mar"].pk, log["jan"].pk]
    # A date is a whole day in the tenant's time zone: 23:30 on 10 Feb counts as 10 Feb.
    assert ids(api.get("/api/v1/redemptions/", {"from": "2026-02-01", "to": "2026-02-10"})) == [log["feb"].pk]
    assert ids(api.get("/api/v1/redemptions/", {"to": "2026-02-10T00:00:00+01:00"})) == [log["jan"].pk]
    assert ids(api.get("/api/v1/redemptions/", {"reversed": "true"})) == []
    assert len(ids(api.get("/api/v1/redemptions/", {"reversed": "false"}))) == 3


def test_list_is_paginated_by_cursor(api, log):
    first = api.get("/api/v1/redemptions/", {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    assert [r["id"] for r in api.get(first["next"]).json()["results"]] == [log["jan"].pk]


def test_export_answers_a_workbook_of_the_filtered_rows(api, log, active_book):
    response = api.get("/api/v1/redemptions/export/", {"book": active_book.pk})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "attachment" in response["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    text = "\n".join(str(cell) for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True) for cell in row)
    assert log["jan"].code.code in text and log["feb"].code.code in text and log["mar"].code.code not in text


def test_a_client_that_accepts_only_octet_stream_gets_the_workbook_as_that_type(api, log, active_book):
    # Both media types are declared in the schema: generic clients read application/octet-stream as bytes.
    response = api.get("/api/v1/redemptions/export/", {"book": active_book.pk}, HTTP_ACCEPT="application/octet-stream")
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert load_workbook(io.BytesIO(response.content), read_only=True).worksheets
    assert api.get("/api/v1/redemptions/export/", HTTP_ACCEPT="*/*")["Content-Type"].endswith("spreadsheetml.sheet")


def test_a_large_export_answers_202_with_a_job_that_ends_in_a_download(
    api, other_api, log, settings, tmp_path, eager_celery, django_capture_on_commit_callbacks
):
    settings.COUPONS = {**settings.COUPONS, "EXPORT_SYNC_ROWS": 1}
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        response = api.get("/api/v1/redemptions/export/", {"user_id": "ann"})
    assert response.status_code == 202, response.content[:300]
    job = response.json()
    assert job["kind"] == "export" and job["total"] == 2
    done = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert done["status"] == "succeeded", done
    assert done["download_url"].endswith(f"/api/v1/jobs/{job['id']}/file/")
    download = api.get(f"/api/v1/jobs/{job['id']}/file/")
    assert download.status_code == 200
    workbook = load_workbook(io.BytesIO(b"".join(download.streaming_content)), read_only=True)
    cells = {str(c) for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True) for c in row}
    assert log["jan"].code.code in cells and log["mar"].code.code in cells and log["feb"].code.code not in cells
    assert_error(other_api.get(f"/api/v1/jobs/{job['id']}/file/"), 404, "job_not_found")


def test_reverse_returns_the_use_to_the_code_and_keeps_the_row(api, log):
    redemption = log["jan"]
    response = api.post(f"/api/v1/redemptions/{redemption.pk}/reverse/", {"reason": "refund"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["reversed"] is True and body["reversal_reason"] == "refund" and body["reversed_by_type"] == "api_client"
    assert Redemption.objects.filter(pk=redemption.pk, reversed_at__isnull=False).exists()
    code = Code.objects.get(pk=redemption.code_id)
    assert code.redeemed_count == 0 and code.state == "assigned"
    again = api.post(f"/api/v1/redemptions/{redemption.pk}/reverse/", {}, format="json")
    assert_error(again, 409, "redemption_already_reversed")
    assert ids(api.get("/api/v1/redemptions/", {"reversed": "true"})) == [redemption.pk]


def test_reverse_of_an_unknown_redemption_answers_404(api):
    assert_error(api.post("/api/v1/redemptions/424242/reverse/", {}, format="json"), 404, "redemption_not_found")


def test_from_after_to_gives_an_empty_list(api, log):
    start = (datetime(2026, 3, 1)).date().isoformat()
    end = (datetime(2026, 3, 1) - timedelta(days=40)).date().isoformat()
    assert ids(api.get("/api/v1/redemptions/", {"from": start, "to": end})) == []
