"""Back office for the redemption log: filters, date hierarchy, the reversal action with its reason, the export
button (at once, or a job that ends in a download link)."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from books.models import Code
from core.models import Job
from redemptions.exports import export_filters_load
from redemptions.models import Redemption
from redemptions.selectors import redemptions_of_tenant
from redemptions.tasks import run_export_job
from tenants.models import Role
from tests.factories import CouponBookFactory
from tests.helpers import logged_in, redemption_make

pytestmark = pytest.mark.django_db


def _page(client, **params):
    response = client.get(reverse("admin:redemptions_redemption_changelist"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_filters_by_book_period_user_and_reversal(client, tenant):
    first, second = CouponBookFactory(tenant=tenant, name="First"), CouponBookFactory(tenant=tenant, name="Second")
    redemption_make(first, order_ref="TODAY-FIRST", user_id="alice")
    redemption_make(second, order_ref="OLD-SECOND", user_id="bob", when=timezone.now() - timedelta(days=400))
    gone = redemption_make(second, order_ref="REVERSED-SECOND", user_id="bob")
    Redemption.objects.filter(pk=gone.pk).update(reversed_at=timezone.now(), reversed_by_type="staff")
    logged_in(client, tenant, Role.ACCOUNTANT)

    by_book = _page(client, book__id__exact=first.pk)
    assert "TODAY-FIRST" in by_book and "OLD-SECOND" not in by_book
    today = _page(client, period="today")
    assert "TODAY-FIRST" in today and "OLD-SECOND" not in today
    by_user = _page(client, user_id="bob")
    assert "OLD-SECOND" in by_user and "TODAY-FIRST" not in by_user
    reversed_only = _page(client, reversed="yes")
    assert "REVERSED-SECOND" in reversed_only and "TODAY-FIRST" not in reversed_only
    standing = _page(client, reversed="no")
    assert "REVERSED-SECOND" not in standing and "TODAY-FIRST" in standing


def test_period_and_date_hierarchy_use_the_tenants_calendar(client, tenant, book):
    # Berlin (the tenant's zone) is UTC+1 in January: 23:30 UTC on 31 Jan is already 1 Feb there.
    redemption_make(book, order_ref="LATE-JAN-UTC", when=datetime(2025, 1, 31, 23, 30, tzinfo=UTC))
    logged_in(client, tenant, Role.ACCOUNTANT)
    february = _page(client, redeemed_at__year="2025", redeemed_at__month="2")
    assert "LATE-JAN-UTC" in february
    assert "LATE-JAN-UTC" not in _page(client, redeemed_at__year="2025", redeemed_at__month="1")


def test_reversal_asks_for_a_reason_then_reverses(client, book):
    redemption = redemption_make(book)
    logged_in(client, book.tenant, Role.ADMIN)
    url = reverse("admin:redemptions_redemption_changelist")
    ask = client.post(url, {"action": "reverse_redemptions", "_selected_action": [redemption.pk]})
    assert ask.status_code == 200 and 'name="reason"' in ask.content.decode()
    empty = client.post(url, {"action": "reverse_redemptions", "_selected_action": [redemption.pk], "post": "yes", "reason": ""})
    assert empty.status_code == 200 and "This field is required" in empty.content.decode()
    redemption.refresh_from_db()
    assert redemption.reversed_at is None
    done = client.post(
        url,
        {"action": "reverse_redemptions", "_selected_action": [redemption.pk], "post": "yes", "reason": "customer refund"},
        follow=True,
    )
    redemption.refresh_from_db()
    assert redemption.reversal_reason == "customer refund" and redemption.reversed_by_type == "staff"
    assert Code.objects.get(pk=redemption.code_id).redeemed_count == 0  # the use went back to the code
    assert "1 redemption(s) reversed" in done.content.decode()


def test_reversing_twice_shows_the_service_error(client, book):
    redemption = redemption_make(book)
    logged_in(client, book.tenant, Role.ADMIN)
    url = reverse("admin:redemptions_redemption_changelist")
    data = {"action": "reverse_redemptions", "_selected_action": [redemption.pk], "post": "yes", "reason": "r"}
    client.post(url, data)
    again = client.post(url, data, follow=True)
    assert "already reversed" in again.content.decode()


def test_export_button_exports_the_filtered_list(client, tenant):
    first, second = CouponBookFactory(tenant=tenant), CouponBookFactory(tenant=tenant)
    redemption_make(first, order_ref="IN-FIRST")
    redemption_make(second, order_ref="IN-SECOND")
    logged_in(client, tenant, Role.ACCOUNTANT)
    assert 'id="export-excel"' in _page(client)
    response = client.get(reverse("admin:redemptions_redemption_export"), {"book__id__exact": first.pk})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="redemptions-')
    sheet = load_workbook(io.BytesIO(response.content))["Redemptions"]
    assert [row[6] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["IN-FIRST"]


def test_export_selected_action(client, book):
    keep = redemption_make(book, order_ref="PICKED")
    redemption_make(book, order_ref="NOT-PICKED")
    logged_in(client, book.tenant, Role.ACCOUNTANT)
    response = client.post(
        reverse("admin:redemptions_redemption_changelist"), {"action": "export_selected", "_selected_action": [keep.pk]}
    )
    sheet = load_workbook(io.BytesIO(response.content))["Redemptions"]
    assert [row[6] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["PICKED"]


def test_large_export_runs_as_a_job_and_ends_in_a_download_for_its_tenant_only(
    client, tenant, other_tenant, book, settings, django_capture_on_commit_callbacks
):
    settings.COUPONS = {**settings.COUPONS, "EXPORT_SYNC_ROWS": 1}
    settings.MEDIA_ROOT = str(settings.MEDIA_ROOT) + "-test-exports"
    redemption_make(book, order_ref="J1")
    redemption_make(book, order_ref="J2")
    logged_in(client, tenant, Role.ACCOUNTANT)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.get(reverse("admin:redemptions_redemption_export"))
    job = Job.objects.get(tenant=tenant, kind=Job.Kind.EXPORT)
    assert response["Location"] == reverse("admin:core_job_change", args=[job.pk])
    progress = client.get(reverse("dashboard:job_progress", args=[job.pk])).json()
    assert (progress["status"], progress["download_url"]) == ("pending", None)

    run_export_job(job.pk)
    progress = client.get(reverse("dashboard:job_progress", args=[job.pk])).json()
    assert progress["status"] == "succeeded" and progress["percent"] == 100
    download = client.get(progress["download_url"])
    assert download.status_code == 200
    sheet = load_workbook(io.BytesIO(b"".join(download.streaming_content)))["Redemptions"]
    assert sorted(row[6] for row in sheet.iter_rows(min_row=2, values_only=True)) == ["J1", "J2"]
    job_page = client.get(reverse("admin:core_job_change", args=[job.pk])).content.decode()
    assert progress["download_url"] in job_page

    client.logout()
    logged_in(client, other_tenant, Role.ACCOUNTANT)
    assert client.get(progress["download_url"]).status_code == 404


def _job_order_refs(job) -> set[str]:
    filters = export_filters_load(job.params["filters"])
    return set(redemptions_of_tenant(tenant=job.tenant, filters=filters).values_list("order_ref", flat=True))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"book": "first"},
        {"period": "today"},
        {"period": "7d", "reversed": "no"},
        {"user_id": "bob"},
        {"reversed": "yes"},
        {"q": "R-OLD"},
        {"q": "alice", "book": "first"},
        {"redeemed_at__year": "2025", "redeemed_at__month": "1"},
        {"redeemed_at__year": "2025", "period": "today"},
        {"o": "-2", "p": "0"},  # ordering and page change no row of the export
    ],
)
def test_an_export_job_stores_filters_that_select_the_rows_the_list_shows(client, tenant, settings, params):
    settings.COUPONS = {
        **settings.COUPONS,
        "EXPORT_SYNC_ROWS": 0,
    }  # every export is a job: its stored filters are what is checked
    first, second = CouponBookFactory(tenant=tenant, name="First"), CouponBookFactory(tenant=tenant, name="Second")
    redemption_make(first, order_ref="R-TODAY", user_id="alice")
    redemption_make(second, order_ref="R-OLD", user_id="bob", when=datetime(2025, 1, 15, 12, tzinfo=UTC))
    redemption_make(first, order_ref="R-WEEK", user_id="bob", when=timezone.now() - timedelta(days=3))
    redemption_make(second, order_ref="R-2024", user_id="bob", when=datetime(2024, 12, 20, 12, tzinfo=UTC))
    gone = redemption_make(second, order_ref="R-GONE", user_id="carol")
    Redemption.objects.filter(pk=gone.pk).update(reversed_at=timezone.now(), reversed_by_type="staff")
    all_refs = {"R-TODAY", "R-OLD", "R-WEEK", "R-2024", "R-GONE"}
    query = {key: value for key, value in params.items() if key != "book"}
    if "book" in params:
        query["book__id__exact"] = first.pk
    logged_in(client, tenant, Role.ACCOUNTANT)
    page = _page(client, **query)
    shown = {ref for ref in all_refs if ref in page}

    response = client.get(reverse("admin:redemptions_redemption_export"), query)
    if shown:
        assert response.status_code == 302
        assert _job_order_refs(Job.objects.get(tenant=tenant, kind=Job.Kind.EXPORT)) == shown
    else:  # nothing to export: answered at once (an empty workbook), from the same filters
        sheet = load_workbook(io.BytesIO(response.content))["Redemptions"]
        assert list(sheet.iter_rows(min_row=2, values_only=True)) == []


def test_export_selected_keeps_the_lists_filters_and_the_selection(client, tenant, settings):
    settings.COUPONS = {**settings.COUPONS, "EXPORT_SYNC_ROWS": 0}
    first, second = CouponBookFactory(tenant=tenant), CouponBookFactory(tenant=tenant)
    picked = [redemption_make(first, order_ref="PICK-1"), redemption_make(first, order_ref="PICK-2")]
    redemption_make(first, order_ref="NOT-PICKED")
    redemption_make(second, order_ref="OTHER-BOOK")
    logged_in(client, tenant, Role.ACCOUNTANT)
    url = reverse("admin:redemptions_redemption_changelist") + f"?book__id__exact={first.pk}"
    client.post(url, {"action": "export_selected", "_selected_action": [r.pk for r in picked]})
    assert _job_order_refs(Job.objects.get(tenant=tenant)) == {"PICK-1", "PICK-2"}
    Job.objects.all().delete()
    client.post(url, {"action": "export_selected", "_selected_action": [picked[0].pk], "select_across": "1"})
    assert _job_order_refs(Job.objects.get(tenant=tenant)) == {"PICK-1", "PICK-2", "NOT-PICKED"}


def test_a_lookup_the_export_cannot_carry_is_refused_not_widened(client, tenant, book):
    redemption_make(book, order_ref="ONLY")
    CouponBookFactory(tenant=tenant)  # two books: the book filter is shown, and reads book__isnull
    logged_in(client, tenant, Role.ACCOUNTANT)
    response = client.get(reverse("admin:redemptions_redemption_export"), {"book__isnull": "True"}, follow=True)
    assert "cannot be exported" in response.content.decode()
    assert not Job.objects.exists()
    assert not response.get("Content-Disposition")


def test_the_list_shows_amount_and_discount_as_money_with_their_currency(client, tenant):
    book = CouponBookFactory(tenant=tenant)
    redemption_make(book, order_ref="IN-USD", discount="7.5", currency="USD")
    redemption_make(book, order_ref="UNKNOWN", discount="2", currency="", user_id="old")
    logged_in(client, tenant, Role.ACCOUNTANT)
    page = _page(client)
    assert '<td class="field-amount_shown">50.00 USD</td><td class="field-discount_shown">7.50 USD</td>' in page
    assert '<td class="field-discount_shown">2.00 (currency unknown)</td>' in page

    detail = client.get(reverse("admin:redemptions_redemption_change", args=[Redemption.objects.get(order_ref="IN-USD").pk]))
    assert "7.50 USD" in detail.content.decode() and "50.00 USD" in detail.content.decode()
