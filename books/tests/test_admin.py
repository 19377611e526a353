"""Back office for books and codes: the changelists (counts without N+1, codes at scale), the book page, generate
and upload (django-import-export) through the services, and the confirmed code actions."""

import io
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import Workbook

from backoffice.paginator import COUNT_CAP
from books.models import Code, CouponBook, Event, Reservation
from books.services.code_creation import codes_generate
from core.actors import Actor
from core.models import Job
from tenants.models import Role
from tests.factories import CodeFactory, CouponBookFactory, ReservationFactory
from tests.helpers import logged_in, redemption_make

pytestmark = pytest.mark.django_db


def _counts_are_bounded(queries) -> None:
    """No COUNT over a whole table: every COUNT the page ran is over a LIMITed subquery."""
    for query in queries:
        sql = query["sql"].upper()
        if "COUNT(" in sql:
            assert "LIMIT" in sql, sql


# --- books ----------------------------------------------------------------------------------------------------


def test_book_changelist_shows_usage_counts_without_n_plus_one(client, tenant):
    logged_in(client, tenant, Role.MARKETING)
    url = reverse("admin:books_couponbook_changelist")

    def page_queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    book = CouponBookFactory(tenant=tenant, name="Counted")
    CodeFactory.create_batch(3, book=book)
    CodeFactory(book=book, state=Code.State.ASSIGNED, user_id="u1")
    redemption_make(book, discount="4.00", currency="EUR")
    redemption_make(book, discount="1.50", currency="USD", user_id="u2")
    redemption_make(book, discount="2.25", currency="EUR", user_id="u3")
    few = page_queries()
    for _ in range(5):
        CodeFactory(book=CouponBookFactory(tenant=tenant))
    assert page_queries() == few  # more books, same number of queries

    page = client.get(url).content.decode()
    row = re.search(r"Counted.*?</tr>", page, re.S).group(0)
    cells = re.findall(r'<td class="field-(\w+)[^"]*">(.*?)</td>', row, re.S)
    values = dict(cells)
    # 3 free + 1 assigned + the redeemed codes made with the redemptions.
    assert (values["codes_total"], values["codes_free"], values["codes_assigned"], values["codes_redeemed"]) == (
        "7",
        "3",
        "1",
        "3",
    )
    assert values["redemptions_count"] == "3"
    # Money per currency, two decimals and its currency, one line each: never one sum across currencies.
    assert values["discount_given"] == '<span class="money">6.25 EUR</span><br><span class="money">1.50 USD</span>'


def test_book_changelist_filters_search_and_sorting(client, tenant):
    logged_in(client, tenant, Role.MARKETING)
    CouponBookFactory(tenant=tenant, name="Alpha paused", status="paused")
    CouponBookFactory(tenant=tenant, name="Beta active", status="active")
    url = reverse("admin:books_couponbook_changelist")
    paused = client.get(url, {"status__exact": "paused"}).content.decode()
    assert "Alpha paused" in paused and "Beta active" not in paused
    found = client.get(url, {"q": "beta"}).content.decode()
    assert "Beta active" in found and "Alpha paused" not in found
    for column in range(1, 10):
        assert client.get(url, {"o": str(column)}).status_code == 200


def test_book_page_shows_stats_chart_and_forms(client, book):
    CodeFactory.create_batch(2, book=book)
    redemption_make(book, when=timezone.now() - timedelta(days=1))
    logged_in(client, book.tenant, Role.MARKETING)
    page = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).content.decode()
    assert 'id="book-stats"' in page
    assert "<svg" in page and 'class="bar"' in page
    assert 'id="book-generate"' in page and 'id="book-upload"' in page


def test_book_page_shows_the_discount_given_per_currency(client, book):
    for index, (discount, currency) in enumerate((("100", "EUR"), ("69.76", "EUR"), ("3.5", "USD"))):
        redemption_make(book, discount=discount, currency=currency, user_id=f"u{index}")
    logged_in(client, book.tenant, Role.MARKETING)
    page = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).content.decode()
    shown = page.split('id="book-discount">')[1].split("</td>")[0]
    assert shown == '<span class="money">169.76 EUR</span><br><span class="money">3.50 USD</span>'


def test_product_ids_are_edited_as_comma_separated_text(client, tenant):
    logged_in(client, tenant, Role.MARKETING)
    data = {
        "name": "Shoes only",
        "status": "draft",
        "discount_type": "percent",
        "discount_value": "10",
        "currency": "",
        "product_ids": " SKU-1, SKU-2,,SKU-1 ,\nSKU-3 ",
        "max_codes_per_user": "1",
        "max_redemptions_per_user": "1",
        "uses_per_code": "1",
        "requires_assignment": "on",
        "lock_ttl_seconds": "300",
    }
    response = client.post(reverse("admin:books_couponbook_add"), {**data, "_continue": "1"})
    assert response.status_code == 302, response.content.decode()[:2000]
    book = CouponBook.objects.get(name="Shoes only")
    # Cleaned into the list the book stores: blanks dropped, a repeat kept once, the order kept.
    assert book.product_ids == ["SKU-1", "SKU-2", "SKU-3"]
    page = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).content.decode()
    assert 'value="SKU-1, SKU-2, SKU-3"' in page and "[&quot;" not in page
    # Emptied: every product.
    change = {**data, "name": "Shoes only", "product_ids": "  "}
    assert client.post(reverse("admin:books_couponbook_change", args=[book.pk]), change).status_code == 302
    book.refresh_from_db()
    assert book.product_ids == []


def test_generate_small_runs_at_once(client, book):
    logged_in(client, book.tenant, Role.MARKETING)
    response = client.post(
        reverse("admin:books_couponbook_generate", args=[book.pk]), {"count": "25", "pattern": "SPRING-######"}, follow=True
    )
    assert Code.objects.filter(book=book).count() == 25
    assert all(code.startswith("SPRING-") for code in Code.objects.filter(book=book).values_list("code", flat=True))
    assert "Generated 25 code(s)" in response.content.decode()


def test_generate_bad_input_shows_the_service_message(client, book):
    logged_in(client, book.tenant, Role.MARKETING)
    response = client.post(
        reverse("admin:books_couponbook_generate", args=[book.pk]), {"count": "5000", "pattern": "A#"}, follow=True
    )
    assert response.status_code == 200
    assert "Not generated" in response.content.decode()
    assert Code.objects.filter(book=book).count() == 0


def test_generate_large_becomes_a_job(client, book, settings, django_capture_on_commit_callbacks):
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 10}
    logged_in(client, book.tenant, Role.MARKETING)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("admin:books_couponbook_generate", args=[book.pk]), {"count": "30"})
    job = Job.objects.get(book=book)
    assert (job.kind, job.total) == (Job.Kind.GENERATE, 30)
    assert response.status_code == 302 and response["Location"] == reverse("admin:core_job_change", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert 'id="job-bar"' in page and reverse("dashboard:job_progress", args=[job.pk]) in page


def test_book_changes_and_archive_go_through_the_services(client, book):
    CodeFactory(book=book)
    logged_in(client, book.tenant, Role.MARKETING)
    url = reverse("admin:books_couponbook_changelist")
    client.post(url, {"action": "pause_books", "_selected_action": [book.pk]})
    book.refresh_from_db()
    assert book.status == "paused"
    confirm = client.post(url, {"action": "archive_books", "_selected_action": [book.pk]})
    assert "Archive coupon books" in confirm.content.decode()
    client.post(url, {"action": "archive_books", "_selected_action": [book.pk], "post": "yes"})
    book.refresh_from_db()
    assert book.status == "archived"


# --- codes at scale -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_codes_changelist_over_200000_codes_is_bounded(client, book):
    codes_generate(book=book, count=200_000, actor=Actor.system("test"))
    assert Code.objects.filter(book=book).count() == 200_000
    logged_in(client, book.tenant, Role.MARKETING)
    url = reverse("admin:books_code_changelist")
    one = Code.objects.filter(book=book).order_by("pk").first()
    for params in ({}, {"state": "free"}, {"book__id__exact": book.pk}, {"p": "3"}, {"q": f"  {one.code.lower()} "}):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, params)
        assert response.status_code == 200, params
        assert len(captured) <= 12, [q["sql"][:200] for q in captured]
        _counts_are_bounded(captured)
    page = client.get(url).content.decode()
    assert f"more than {COUNT_CAP}" in page
    found = client.get(url, {"q": f"  {one.code.lower()} "}).content.decode()
    assert one.code in found and "1 code" in found


def test_exact_code_and_user_search(client, book):
    CodeFactory(book=book, code="ABC123")
    CodeFactory(book=book, code="ABC1234", state=Code.State.ASSIGNED, user_id="Customer-9")
    logged_in(client, book.tenant, Role.MARKETING)
    url = reverse("admin:books_code_changelist")
    page = client.get(url, {"q": " abc123 "}).content.decode()
    assert ">ABC123<" in page and ">ABC1234<" not in page
    page = client.get(url, {"q": "Customer-9"}).content.decode()
    assert ">ABC1234<" in page and ">ABC123<" not in page


def test_void_asks_for_confirmation_then_calls_the_service(client, book):
    code = CodeFactory(book=book, code="LEAKED1")
    reservation = ReservationFactory(code=code, user_id="u1")
    logged_in(client, book.tenant, Role.MARKETING)
    url = reverse("admin:books_code_changelist")
    confirm = client.post(url, {"action": "void_codes", "_selected_action": [code.pk]})
    assert confirm.status_code == 200
    assert "Void codes" in confirm.content.decode() and "LEAKED1" in confirm.content.decode()
    code.refresh_from_db()
    assert code.state == Code.State.FREE  # nothing yet
    client.post(url, {"action": "void_codes", "_selected_action": [code.pk], "post": "yes", "reason": "posted online"})
    code.refresh_from_db()
    reservation.refresh_from_db()
    assert code.state == Code.State.VOIDED
    assert reservation.status == Reservation.Status.RELEASED
    event = Event.objects.get(code=code, kind=Event.Kind.VOIDED)
    assert event.data == {"reason": "posted online"} and event.actor_type == "staff"


def test_unassign_reports_codes_the_service_refuses(client, book):
    assigned = CodeFactory(book=book, state=Code.State.ASSIGNED, user_id="u1", code="TAKEN1")
    free = CodeFactory(book=book, code="FREE1")
    logged_in(client, book.tenant, Role.MARKETING)
    response = client.post(
        reverse("admin:books_code_changelist"),
        {"action": "unassign_codes", "_selected_action": [assigned.pk, free.pk], "post": "yes"},
        follow=True,
    )
    assigned.refresh_from_db()
    assert (assigned.state, assigned.user_id) == (Code.State.FREE, None)
    text = response.content.decode()
    assert "1 code(s) unassigned" in text and "FREE1: Only an assigned" in text


def test_release_reservations(client, book):
    code = CodeFactory(book=book, state=Code.State.ASSIGNED, user_id="u1")
    held = ReservationFactory(code=code, user_id="u1")
    logged_in(client, book.tenant, Role.MARKETING)
    client.post(
        reverse("admin:books_code_changelist"), {"action": "release_reservations", "_selected_action": [code.pk], "post": "yes"}
    )
    held.refresh_from_db()
    assert held.status == Reservation.Status.RELEASED
    assert Event.objects.filter(code=code, kind=Event.Kind.UNLOCKED, user_id="u1").exists()


def test_code_page_shows_its_history(client, book):
    code = CodeFactory(book=book, code="HIST1")
    logged_in(client, book.tenant, Role.MARKETING)
    client.post(
        reverse("admin:books_code_changelist"),
        {"action": "void_codes", "_selected_action": [code.pk], "post": "yes", "reason": ""},
    )
    page = client.get(reverse("admin:books_code_change", args=[code.pk])).content.decode()
    assert "Voided" in page


# --- upload with django-import-export -------------------------------------------------------------------------


def _import(client, book, upload, *, fmt: str, skip=False):
    data = {"book": book.pk, "import_file": upload, "format": fmt, "resource": "0"}
    if skip:
        data["skip_duplicates"] = "on"
    return client.post(reverse("admin:books_code_import"), data)


def _confirm(client, preview):
    form = preview.context["confirm_form"]
    data = {name: form.initial.get(name, "") for name in form.fields}
    data["skip_duplicates"] = "on" if form.initial.get("skip_duplicates") else ""
    return client.post(reverse("admin:books_code_process_import"), data, follow=True)


def test_csv_upload_previews_then_imports_through_the_service(client, book):
    logged_in(client, book.tenant, Role.MARKETING)
    upload = SimpleUploadedFile("codes.csv", b"code\n alpha-1\nBETA-2\ngamma_3\n", content_type="text/csv")
    preview = _import(client, book, upload, fmt="0")
    assert preview.status_code == 200
    text = preview.content.decode()
    assert "Preview" in text and "ALPHA-1" in text and 'id="upload-totals"' in text
    assert Code.objects.filter(book=book).count() == 0  # nothing before the confirm step
    done = _confirm(client, preview)
    assert sorted(Code.objects.filter(book=book).values_list("code", flat=True)) == ["ALPHA-1", "BETA-2", "GAMMA_3"]
    assert "Uploaded 3 code(s)" in done.content.decode()
    assert Event.objects.filter(book=book, kind=Event.Kind.UPLOADED).count() == 1


def test_xlsx_upload_of_a_plain_column(client, book):
    workbook = Workbook()
    for value in ("XL-0001", "XL-0002", 12345):
        workbook.active.append([value])
    buffer = io.BytesIO()
    workbook.save(buffer)
    logged_in(client, book.tenant, Role.MARKETING)
    upload = SimpleUploadedFile("codes.xlsx", buffer.getvalue())
    preview = _import(client, book, upload, fmt="1")
    assert "confirm_form" in preview.context, preview.content.decode()[:3000]
    _confirm(client, preview)
    assert sorted(Code.objects.filter(book=book).values_list("code", flat=True)) == ["12345", "XL-0001", "XL-0002"]


def test_upload_lists_every_bad_row_and_imports_nothing(client, book):
    CodeFactory(book=book, tenant=book.tenant, code="EXISTING1")
    logged_in(client, book.tenant, Role.MARKETING)
    upload = SimpleUploadedFile("codes.csv", b"code\nGOOD-1\nx\nGOOD-1\nexisting1\n", content_type="text/csv")
    preview = _import(client, book, upload, fmt="0")
    text = preview.content.decode()
    assert "confirm_form" not in preview.context
    invalid = {row.number: row.error_dict["code"][0] for row in preview.context["result"].invalid_rows}
    assert invalid == {
        2: "Not a code: 3 to 64 letters, digits, '-' or '_'.",
        3: "Repeats row 1.",
        4: "This code exists already in your codes.",
    }
    assert "Repeats row 1." in text
    assert Code.objects.filter(book=book).count() == 1


def test_upload_skipping_duplicates_imports_the_rest(client, book):
    CodeFactory(book=book, tenant=book.tenant, code="EXISTING1")
    logged_in(client, book.tenant, Role.MARKETING)
    upload = SimpleUploadedFile("codes.csv", b"code\nNEW-1\nNEW-1\nEXISTING1\nNEW-2\n", content_type="text/csv")
    preview = _import(client, book, upload, fmt="0", skip=True)
    assert "confirm_form" in preview.context
    done = _confirm(client, preview)
    assert sorted(Code.objects.filter(book=book).values_list("code", flat=True)) == ["EXISTING1", "NEW-1", "NEW-2"]
    assert "2 duplicate(s) skipped" in done.content.decode()


def test_upload_large_becomes_a_job(client, book, settings, django_capture_on_commit_callbacks):
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 3}
    logged_in(client, book.tenant, Role.MARKETING)
    body = "code\n" + "\n".join(f"BULK-{i:04d}" for i in range(8))
    preview = _import(client, book, SimpleUploadedFile("codes.csv", body.encode(), content_type="text/csv"), fmt="0")
    with django_capture_on_commit_callbacks(execute=False):
        _confirm(client, preview)
    job = Job.objects.get(book=book)
    assert (job.kind, job.total) == (Job.Kind.UPLOAD, 8)


def test_upload_into_another_tenants_book_is_refused(client, tenant, other_tenant):
    theirs = CouponBookFactory(tenant=other_tenant)
    logged_in(client, tenant, Role.MARKETING)
    upload = SimpleUploadedFile("codes.csv", b"code\nSNEAK-1\n", content_type="text/csv")
    preview = _import(client, theirs, upload, fmt="0")
    assert "book" in preview.context["form"].errors
    assert not Code.objects.filter(code="SNEAK-1").exists()


def test_events_and_reservations_lists_are_scoped_and_open(client, tenant, other_tenant, book):
    code = CodeFactory(book=book, code="EVT-MINE")
    ReservationFactory(code=code, user_id="holder-mine")
    theirs = CodeFactory(book=CouponBookFactory(tenant=other_tenant), code="EVT-THEIRS")
    ReservationFactory(code=theirs, user_id="holder-theirs")
    logged_in(client, tenant, Role.MARKETING)
    client.post(
        reverse("admin:books_code_changelist"),
        {"action": "void_codes", "_selected_action": [code.pk], "post": "yes", "reason": ""},
    )
    events = client.get(reverse("admin:books_event_changelist"), {"_facets": "1"}).content.decode()
    assert "EVT-MINE" in events and "EVT-THEIRS" not in events
    reservations = client.get(reverse("admin:books_reservation_changelist")).content.decode()
    assert "holder-mine" in reservations and "holder-theirs" not in reservations


def test_a_save_the_service_refuses_shows_the_form_again_with_the_input_kept(client, book):
    """Given a code redeemed twice, lowering uses_per_code to 1 is refused on the form, not after a reload."""
    book.uses_per_code = 3
    book.save()
    code = CodeFactory(book=book, code="TWICE-USED", redeemed_count=2)
    name_before = book.name
    logged_in(client, book.tenant, Role.MARKETING)
    url = reverse("admin:books_couponbook_change", args=[book.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "tenant"}
    data.update(
        name="Renamed while refused",
        uses_per_code="1",
        valid_from_0="",
        valid_from_1="",
        valid_until_0="",
        valid_until_1="",
        product_ids="",
        requires_assignment="on",
    )

    response = client.post(url, data)

    assert response.status_code == 200  # the form again, not a redirect
    page = response.content.decode()
    assert "cannot go below that" in page
    assert 'value="Renamed while refused"' in page
    book.refresh_from_db()
    code.refresh_from_db()
    # Nothing of the refused save was written: each field keeps its value.
    assert book.name == name_before
    assert book.uses_per_code == 3
    assert code.max_uses == 3
