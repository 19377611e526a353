"""The redemption log as an Excel workbook (openpyxl, write-only: rows stream to disk, memory stays flat).

Public interface (the admin and the API both call it):

- ``export_request(*, tenant, filters, actor) -> ExportFile | Job``: the tenant's redemptions narrowed by
  ``filters`` (a RedemptionFilters, read through redemptions.selectors.redemptions_of_tenant). Up to
  ``settings.COUPONS["EXPORT_SYNC_ROWS"]`` rows (default 50,000) the workbook is built at once and returned as an
  ExportFile; above that a core Job (kind export) is created, storing the filters as signed JSON, and
  ``redemptions.tasks.run_export_job`` is queued on commit; it rebuilds the rows from the filters and writes the
  file to Job.file.
- ``redemptions_workbook_write(*, tenant, queryset, out, progress=None) -> int``: writes the workbook to ``out``
  (a path or a binary file object) and returns the number of redemption rows written. Used by both paths.

The workbook
------------
Sheet "Redemptions" (continued on "Redemptions 2", "Redemptions 3", ... when a sheet reaches Excel's limit of
MAX_SHEET_ROWS rows, header included; every data sheet repeats the header). One row per redemption, oldest first,
with these columns, in this order (stable: integrations may rely on them):

    redemption_id    the redemption's id
    redeemed_at      when, in the tenant's time zone (Excel dates carry no zone; the Summary sheet names it)
    book_id          the coupon book's id
    book_name        the coupon book's name
    code             the code string
    user_id          the integrator's end-user id
    order_ref        the order reference the integrator sent
    product_id       the product id the integrator sent
    amount           the order amount sent (number, empty when none was sent)
    discount         the discount applied (number)
    currency         the order's ISO 4217 currency, which the amount and the discount are in (empty for a row
                     stored before redemptions had a currency, whose book had none)
    actor_type       who redeemed: api_client, end_user, staff or system
    actor_id         their id (the API client id, the staff user id, ...)
    reversed         "yes" when the redemption was reversed (refunded), else "no"
    reversed_at      when it was reversed, in the tenant's time zone
    reversal_reason  why
    reversed_by      who reversed it, as "type:id"

Sheet "Summary": one row per coupon book, tenant-local day and currency with the standing (not reversed)
redemptions, the reversed ones, and the total discount of the standing ones, then one "Total" row per currency
(money is never summed across currencies); its totals equal the data sheets.

Formula injection: a text cell whose value starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
written with a single quote (``'``) in front, so it is stored and shown as text and no spreadsheet evaluates it
(OWASP's advice for CSV/Excel injection); the quote is visible in the cell. Characters that the XLSX format cannot
hold at all (control characters other than tab, LF and CR) are removed.
"""

import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

from django.conf import settings
from django.core import signing
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from core.actors import Actor
from core.downloads import XLSX_CONTENT_TYPE
from core.models import Job
from core.services import job_create
from tenants.models import Tenant

from .models import OUTCOME_FIELDS
from .selectors import RedemptionFilters, currency_order, redemptions_of_tenant

# Excel's rows per sheet (2**20). A module constant so that a test can lower it to see the overflow sheet.
MAX_SHEET_ROWS = 1_048_576
DATA_SHEET = "Redemptions"
SUMMARY_SHEET = "Summary"
COLUMNS = (
    "redemption_id",
    "redeemed_at",
    "book_id",
    "book_name",
    "code",
    "user_id",
    "order_ref",
    "product_id",
    "amount",
    *OUTCOME_FIELDS,
    "reversed_by",
)
SUMMARY_COLUMNS = ("book_id", "book_name", "day", "currency", "redemptions", "reversed", "discount_total")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_FILTERS_SALT = "redemptions.exports.filters"

# The columns read from the database, in one query with the book and code joined (no model instances): each
# column's own field, but for these; "reversed" and "reversed_by" are derived from the reversal's fields.
_COLUMN_SOURCES = {"redemption_id": "pk", "book_name": "book__name", "code": "code__code", "reversed": "", "reversed_by": ""}
_FIELDS = (
    *(source for source in (_COLUMN_SOURCES.get(column, column) for column in COLUMNS) if source),
    "reversed_by_type",
    "reversed_by_id",
)


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content: bytes
    content_type: str = XLSX_CONTENT_TYPE


def cell_text(value: str | None) -> str:
    """Text as a spreadsheet must see it: never a formula, never a character XLSX cannot hold."""
    if not value:
        return ""
    if ILLEGAL_CHARACTERS_RE.search(value):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def export_filename(*, tenant: Tenant) -> str:
    stamp = timezone.localtime(timezone.now(), tenant.zoneinfo).strftime("%Y%m%d-%H%M%S")
    return f"redemptions-{tenant.slug}-{stamp}.xlsx"


def redemptions_workbook_write(
    *, tenant: Tenant, queryset, out: str | IO[bytes], progress: Callable[[int], None] | None = None
) -> int:
    """Write the tenant's redemptions of `queryset` as the documented workbook to `out`; return the rows written."""
    zone = tenant.zoneinfo
    rows = queryset.filter(tenant=tenant).order_by("redeemed_at", "pk").values_list(*_FIELDS)
    chunk = int(settings.COUPONS["EXPORT_CHUNK_ROWS"])
    per_sheet = MAX_SHEET_ROWS - 1  # the header takes one row of every data sheet

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(DATA_SHEET)
    sheet.append(COLUMNS)
    sheets, on_sheet, written = 1, 0, 0
    # (book_id, day, currency) -> [book_name, standing, reversed, discount]; bounded by books x days x currencies.
    summary: dict[tuple, list] = defaultdict(lambda: [None, 0, 0, Decimal("0")])
    book_names: dict[int, str] = {}

    for (
        pk,
        redeemed_at,
        book_id,
        book_name,
        code,
        user_id,
        order_ref,
        product_id,
        amount,
        discount,
        currency,
        actor_type,
        actor_id,
        reversed_at,
        reversal_reason,
        reversed_by_type,
        reversed_by_id,
    ) in rows.iterator(chunk_size=chunk):
        if on_sheet == per_sheet:
            sheets += 1
            sheet = workbook.create_sheet(f"{DATA_SHEET} {sheets}")
            sheet.append(COLUMNS)
            on_sheet = 0
        local = redeemed_at.astimezone(zone).replace(tzinfo=None)
        name = book_names.get(book_id)
        if name is None:
            name = book_names[book_id] = cell_text(book_name)
        sheet.append(
            (
                pk,
                local,
                book_id,
                name,
                cell_text(code),
                cell_text(user_id),
                cell_text(order_ref),
                cell_text(product_id),
                amount,
                discount,
                currency,
                actor_type,
                cell_text(actor_id),
                "yes" if reversed_at else "no",
                reversed_at.astimezone(zone).replace(tzinfo=None) if reversed_at else None,
                cell_text(reversal_reason),
                f"{reversed_by_type}:{cell_text(reversed_by_id)}" if reversed_at else "",
            )
        )
        entry = summary[(book_id, local.date(), currency)]
        if reversed_at:
            entry[2] += 1
        else:
            entry[1] += 1
            entry[3] += discount or 0
        on_sheet += 1
        written += 1
        if progress is not None and written % chunk == 0:
            progress(written)

    _summary_sheet_write(workbook, summary=summary, book_names=book_names, tenant=tenant, rows=written)
    workbook.save(out)
    if progress is not None:
        progress(written)
    return written


def _summary_sheet_write(workbook, *, summary: dict, book_names: dict, tenant: Tenant, rows: int) -> None:
    # Write-only sheets are streamed to their own temporary files, so the summary, computed while the data
    # streamed, can still be placed first in the workbook.
    sheet = workbook.create_sheet(SUMMARY_SHEET, 0)
    sheet.append(SUMMARY_COLUMNS)
    # currency -> [standing, reversed, discount]: one total per currency, never one sum of them all.
    totals: dict[str, list] = defaultdict(lambda: [0, 0, Decimal("0")])
    for (book_id, day, currency), (_, count, reversed_count, discount) in sorted(
        summary.items(), key=lambda item: (item[0][1], item[0][0], currency_order(item[0][2]))
    ):
        sheet.append((book_id, book_names[book_id], day, currency, count, reversed_count, discount))
        total = totals[currency]
        total[0] += count
        total[1] += reversed_count
        total[2] += discount
    for currency in sorted(totals, key=currency_order) or [""]:
        standing, reversed_total, discount_total = totals[currency]
        sheet.append(("Total", "", None, currency, standing, reversed_total, discount_total))
    sheet.append(())
    sheet.append(("Time zone", tenant.timezone))
    sheet.append(("Rows", rows))
    sheet.append(("Generated", timezone.localtime(timezone.now(), tenant.zoneinfo).replace(tzinfo=None)))


# --- Requests: at once, or as a job -------------------------------------------------------------------------


def export_filters_dump(filters: RedemptionFilters) -> str:
    """The filters as the job stores them: JSON (it survives upgrades), signed (SECRET_KEY) so that a worker
    only ever runs filters this code wrote."""
    return signing.dumps(filters.to_json(), salt=_FILTERS_SALT, compress=True)


def export_filters_load(value: str) -> RedemptionFilters:
    return RedemptionFilters.from_json(signing.loads(value, salt=_FILTERS_SALT))


def export_sync_limit() -> int:
    return int(settings.COUPONS["EXPORT_SYNC_ROWS"])


def export_request(*, tenant: Tenant, filters: RedemptionFilters, actor: Actor) -> ExportFile | Job:
    """The workbook of the tenant's redemptions narrowed by `filters`: at once, or (above the limit) as a job."""
    rows = redemptions_of_tenant(tenant=tenant, filters=filters)
    count = rows.count()
    filename = export_filename(tenant=tenant)
    if count <= export_sync_limit():
        buffer = io.BytesIO()
        redemptions_workbook_write(tenant=tenant, queryset=rows, out=buffer)
        return ExportFile(filename=filename, content=buffer.getvalue())
    from .tasks import run_export_job

    return job_create(
        tenant=tenant,
        kind=Job.Kind.EXPORT,
        task=run_export_job,
        actor=actor,
        total=count,
        params={"filters": export_filters_dump(filters), "filename": filename},
    )
