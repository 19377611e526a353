"""The Excel export, read back with openpyxl: documented columns, tenant-local times, summary totals equal to the
database, escaped formula cells, overflow onto a next sheet, and the job path for large exports."""

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum
from openpyxl import load_workbook

from core.actors import Actor
from core.models import Job
from redemptions import exports
from redemptions.exports import COLUMNS, ExportFile, export_request, redemptions_workbook_write
from redemptions.models import Redemption
from redemptions.selectors import RedemptionFilters
from redemptions.tasks import run_export_job
from tests.factories import CouponBookFactory
from tests.helpers import redemption_make

pytestmark = pytest.mark.django_db


def _workbook(tenant, queryset=None):
    buffer = io.BytesIO()
    written = redemptions_workbook_write(tenant=tenant, queryset=queryset or Redemption.objects.all(), out=buffer)
    buffer.seek(0)
    return written, load_workbook(buffer)


def _data_rows(workbook):
    rows = []
    for sheet in workbook.worksheets:
        if sheet.title.startswith("Redemptions"):
            values = list(sheet.iter_rows(values_only=True))
            assert values[0] == COLUMNS
            rows.extend(values[1:])
    return rows


def test_data_sheet_has_the_documented_columns_and_tenant_local_times(tenant, book):
    # tenant's zone is Europe/Berlin (the factory's): 22:30 UTC on 31 March is 00:30 on 1 April there.
    when = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
    redemption = redemption_make(book, user_id="customer-7", discount="2.50", when=when, order_ref="A-1", product_id="sku-1")
    written, workbook = _workbook(tenant)
    assert written == 1
    assert workbook.sheetnames == ["Summary", "Redemptions"]
    (row,) = _data_rows(workbook)
    record = dict(zip(COLUMNS, row, strict=True))
    assert record["redemption_id"] == redemption.pk
    assert record["redeemed_at"] == datetime(2026, 4, 1, 0, 30)
    assert record["book_id"] == book.pk and record["book_name"] == book.name
    assert record["code"] == redemption.code.code
    assert (record["user_id"], record["order_ref"], record["product_id"]) == ("customer-7", "A-1", "sku-1")
    assert Decimal(str(record["discount"])) == Decimal("2.50")
    assert record["reversed"] == "no"


def test_summary_totals_equal_the_database_per_currency(tenant):
    # Given: a tenant with a EUR book, a USD book and a percent book used in both currencies, some reversed
    eur = CouponBookFactory(tenant=tenant, discount_type="fixed", discount_value="5", currency="EUR")
    usd = CouponBookFactory(tenant=tenant, discount_type="fixed", discount_value="7", currency="USD")
    percent = CouponBookFactory(tenant=tenant)
    days = [datetime(2026, 5, d, 12, tzinfo=UTC) for d in (1, 1, 2, 3)]
    for index, when in enumerate(days):
        redemption_make(eur, when=when, discount=f"{index + 1}.25", currency="EUR", user_id=f"e{index}")
        redemption_make(usd, when=when, discount=f"{index + 2}.10", currency="USD", user_id=f"u{index}")
        redemption_make(percent, when=when, discount="0.75", currency="EUR" if index % 2 else "USD", user_id=f"p{index}")
    for book, currency in ((eur, "EUR"), (usd, "USD")):
        reversed_one = redemption_make(book, when=days[0], discount="9.00", currency=currency, user_id="refunded")
        Redemption.objects.filter(pk=reversed_one.pk).update(reversed_at=days[0], reversed_by_type="staff", reversal_reason="r")

    # When: the workbook is read back with openpyxl
    _, workbook = _workbook(tenant)

    # Then: one Total row per currency, each equal to the database's figures in that currency
    summary = list(workbook["Summary"].iter_rows(values_only=True))
    assert summary[0] == exports.SUMMARY_COLUMNS
    body = [row for row in summary[1:] if isinstance(row[0], int)]
    totals = {row[3]: row for row in summary if row[0] == "Total"}
    assert list(totals) == ["EUR", "USD"]
    for currency, total in totals.items():
        rows = Redemption.objects.filter(tenant=tenant, currency=currency)
        expected = rows.aggregate(
            standing=Count("pk", filter=Q(reversed_at__isnull=True)),
            reversed=Count("pk", filter=Q(reversed_at__isnull=False)),
            discount=Sum("discount", filter=Q(reversed_at__isnull=True)),
        )
        mine = [row for row in body if row[3] == currency]
        assert total[4] == expected["standing"] == sum(row[4] for row in mine)
        assert total[5] == expected["reversed"] == 1
        assert Decimal(str(total[6])) == expected["discount"] == sum(Decimal(str(row[6])) for row in mine)
    assert Decimal(str(totals["EUR"][6])) == Decimal("11.00") + Decimal("1.50")  # 1.25 + 2.25 + 3.25 + 4.25, 2 x 0.75
    assert Decimal(str(totals["USD"][6])) == Decimal("14.40") + Decimal("1.50")
    # One row per book, tenant-local day and currency, each equal to the database's count and sum for it.
    expected_rows = {}
    for r in Redemption.objects.filter(tenant=tenant, reversed_at__isnull=True):
        key = (r.book_id, r.redeemed_at.astimezone(tenant.zoneinfo).date(), r.currency)
        count, discount = expected_rows.get(key, (0, Decimal("0")))
        expected_rows[key] = (count + 1, discount + r.discount)
    found = {(row[0], row[2].date(), row[3]): (row[4], Decimal(str(row[6]))) for row in body if row[4]}
    assert found == expected_rows


def test_summary_of_no_rows_has_one_empty_total(tenant):
    _, workbook = _workbook(tenant)
    totals = [row for row in workbook["Summary"].iter_rows(values_only=True) if row[0] == "Total"]
    assert totals == [("Total", None, None, None, 0, 0, 0)]


@pytest.mark.parametrize("dangerous", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tcalc", "\rcalc"])
def test_formula_like_text_is_escaped(tenant, book, dangerous):
    redemption_make(book, user_id=dangerous, order_ref=dangerous, product_id=dangerous)
    buffer = io.BytesIO()
    redemptions_workbook_write(tenant=tenant, queryset=Redemption.objects.all(), out=buffer)
    sheet = load_workbook(io.BytesIO(buffer.getvalue()))["Redemptions"]
    for column in ("user_id", "order_ref", "product_id"):
        cell = sheet.cell(row=2, column=COLUMNS.index(column) + 1)
        assert cell.data_type == "s"
        # (XML reads a carriage return back as a line feed; the quote in front is what matters.)
        assert cell.value.replace("\n", "\r") == "'" + dangerous
    # And no cell of the workbook is a formula.
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_characters_xlsx_cannot_hold_are_removed(tenant, book):
    redemption_make(book, order_ref="bad\x01ref\x1f")
    _, workbook = _workbook(tenant)
    (row,) = _data_rows(workbook)
    assert row[COLUMNS.index("order_ref")] == "badref"


def test_rows_past_the_sheet_limit_continue_on_a_next_sheet(tenant, book, monkeypatch):
    monkeypatch.setattr(exports, "MAX_SHEET_ROWS", 4)  # a header and 3 rows per sheet
    made = [redemption_make(book, order_ref=f"R{i}", when=datetime(2026, 1, 1, 10, i, tzinfo=UTC)) for i in range(8)]
    written, workbook = _workbook(tenant)
    assert written == 8
    assert workbook.sheetnames == ["Summary", "Redemptions", "Redemptions 2", "Redemptions 3"]
    assert [workbook[name].max_row for name in workbook.sheetnames[1:]] == [4, 4, 3]
    assert [row[0] for row in _data_rows(workbook)] == [r.pk for r in made]


def test_only_the_tenants_rows_are_written(tenant, other_tenant, book):
    redemption_make(book, order_ref="MINE")
    redemption_make(CouponBookFactory(tenant=other_tenant), order_ref="THEIRS")
    _, workbook = _workbook(tenant)
    assert [row[COLUMNS.index("order_ref")] for row in _data_rows(workbook)] == ["MINE"]


def test_small_export_is_answered_at_once(tenant, book):
    redemption_make(book)
    outcome = export_request(tenant=tenant, filters=RedemptionFilters(), actor=Actor.system("test"))
    assert isinstance(outcome, ExportFile)
    assert outcome.filename.startswith(f"redemptions-{tenant.slug}-") and outcome.filename.endswith(".xlsx")
    assert len(_data_rows(load_workbook(io.BytesIO(outcome.content)))) == 1


def test_large_export_becomes_a_job_whose_task_writes_the_file(tenant, book, settings, django_capture_on_commit_callbacks):
    settings.COUPONS = {**settings.COUPONS, "EXPORT_SYNC_ROWS": 2}
    settings.MEDIA_ROOT = str(settings.MEDIA_ROOT) + "-test-exports"
    made = [redemption_make(book, order_ref=f"O{index}") for index in range(4)]
    # The job stores these filters as JSON and rebuilds exactly these rows from them (O3 is left out).
    filters = RedemptionFilters(book_id=book.pk, reversed=False, ids=tuple(r.pk for r in made[:3]))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = export_request(tenant=tenant, filters=filters, actor=Actor.system("test"))
    assert isinstance(outcome, Job)
    assert (outcome.kind, outcome.status, outcome.total) == (Job.Kind.EXPORT, Job.Status.PENDING, 3)
    assert len(callbacks) == 1  # the task is queued on commit

    run_export_job(outcome.pk)  # what the worker runs
    job = Job.objects.get(pk=outcome.pk)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["rows"] == 3 and job.done == 3
    with job.file.open("rb") as handle:
        rows = _data_rows(load_workbook(io.BytesIO(handle.read())))
    assert sorted(row[COLUMNS.index("order_ref")] for row in rows) == ["O0", "O1", "O2"]
    run_export_job(outcome.pk)  # a second delivery changes nothing
    assert Job.objects.get(pk=outcome.pk).file.name == job.file.name


def test_a_tampered_job_query_is_refused(tenant, book):
    job = Job.objects.create(
        tenant=tenant, kind=Job.Kind.EXPORT, actor_type="system", total=1, params={"filters": "x", "filename": "f.xlsx"}
    )
    run_export_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "BadSignature" in job.error


def test_filters_survive_their_json_form(tenant, book):
    filters = RedemptionFilters(
        book_id=book.pk,
        user_id="bob",
        since=datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        until=datetime(2026, 2, 1, 0, 0, tzinfo=UTC),
        reversed=False,
        search="A-1",
        ids=(3, 1, 2),
    )
    stored = json.loads(json.dumps(filters.to_json()))
    assert RedemptionFilters.from_json(stored) == filters
    assert exports.export_filters_load(exports.export_filters_dump(filters)) == filters
    assert RedemptionFilters.from_json(RedemptionFilters().to_json()) == RedemptionFilters()
