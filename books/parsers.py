"""Reading uploaded files (CSV or XLSX) into a list of values, for the API, the admin and the jobs alike: codes for
an upload (`codes_from_file`), end-user ids for a distribution (`user_ids_from_file`).

The values are in the column whose first cell reads `code` (`user_id` for user ids; any case; that row is a
header), else in the first column; empty rows are skipped. The list is returned raw: the services normalise and
check every value.

Spreadsheets are hostile input (SPEC "Code generation and upload"). An XLSX file is a zip archive, so before any
parsing `upload_inspect` checks what the archive's own directory declares: the number of entries, their inflated
total (zipfile never inflates an entry past its declared size, so the declaration is a real bound), the inflation
ratio of each large entry (a zip bomb inflates a thousandfold; a real sheet some tens of times: the same rule as
Apache POI's ZipSecureFile), and the row count a sheet declares in its <dimension>. Parsing then streams (openpyxl's
read-only mode, csv's reader) and stops at the row bound, empty rows included, so neither memory nor time grows past
the bounds whatever the file claims.
"""

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings

from core.exceptions import ApplicationError

XLSX_MAGIC = b"PK\x03\x04"
HEADER = "code"
USER_ID_HEADER = "user_id"
# Entries inflating to more than this are held to the ratio bound (small ones compress as they like).
RATIO_CHECKED_FROM_BYTES = 1024 * 1024
MAX_ZIP_ENTRIES = 1000
DIMENSION_RE = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"[A-Z]*\d*:?[A-Z]*(\d+)\"")


@dataclass(frozen=True)
class UploadShape:
    """What a file is and how big it gets once read: `inflated` is a CSV's size, an XLSX's entries in total."""

    format: str  # "csv" or "xlsx"
    size: int
    inflated: int


def _limits() -> dict:
    coupons = settings.COUPONS
    return {
        "size": coupons["API_UPLOAD_MAX_BYTES"],
        "inflated": coupons["UPLOAD_MAX_INFLATED_BYTES"],
        "ratio": coupons["UPLOAD_MAX_INFLATE_RATIO"],
        # A header row, then at most MAX_CODES_PER_REQUEST codes; empty rows count too.
        "rows": coupons["MAX_CODES_PER_REQUEST"] + 1,
    }


def _too_large(message: str, **details) -> ApplicationError:
    return ApplicationError("request_too_large", message, {"field": "file", **details})


def _unreadable(message: str, reason: str = "") -> ApplicationError:
    details = {"field": "file"}
    if reason:
        details["reason"] = reason[:200]
    return ApplicationError("invalid_input", message, details)


def _size(file: BinaryIO) -> int:
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


def _is_xlsx(file: BinaryIO, filename: str) -> bool:
    head = file.read(len(XLSX_MAGIC))
    file.seek(0)
    return head == XLSX_MAGIC or filename.lower().endswith(".xlsx")


def upload_inspect(file: BinaryIO, filename: str = "") -> UploadShape:
    """Check a file's bounds without parsing it; refuse it (413 request_too_large, 400 if damaged) when one fails."""
    limits = _limits()
    size = _size(file)
    if size > limits["size"]:
        raise _too_large(f"An upload is at most {limits['size']:,} bytes.", limit=limits["size"])
    if not _is_xlsx(file, filename):
        return UploadShape(format="csv", size=size, inflated=size)
    try:
        archive = zipfile.ZipFile(file)
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _unreadable("The XLSX workbook cannot be read.", str(exc)) from None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise _unreadable(f"The XLSX workbook holds {len(entries):,} parts; a workbook of codes needs a handful.")
    inflated = 0
    for entry in entries:
        inflated += entry.file_size
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_CHECKED_FROM_BYTES and ratio > limits["ratio"]:
            raise _too_large(
                f"The XLSX part {entry.filename[:100]} inflates {ratio:,.0f} times (at most {limits['ratio']}): "
                "this is not a spreadsheet of codes.",
                inflated=entry.file_size,
            )
    if inflated > limits["inflated"]:
        raise _too_large(
            f"The XLSX workbook inflates to {inflated:,} bytes; at most {limits['inflated']:,}.",
            inflated=inflated,
            limit=limits["inflated"],
        )
    for entry in entries:
        if entry.filename.startswith("xl/worksheets/") and entry.filename.endswith(".xml"):
            _declared_rows_check(archive, entry, limits["rows"])
    file.seek(0)
    return UploadShape(format="xlsx", size=size, inflated=inflated)


def _declared_rows_check(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, max_rows: int) -> None:
    """A sheet's <dimension ref="A1:A3000000"> comes before its rows: a cheap early refusal (parsing counts too)."""
    try:
        with archive.open(entry) as sheet:
            head = sheet.read(4096)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise _unreadable("The XLSX workbook cannot be read.", str(exc)) from None
    match = DIMENSION_RE.search(head)
    if match and int(match.group(1)) > max_rows:
        raise _too_large(f"The sheet declares {int(match.group(1)):,} rows; an upload holds at most {max_rows - 1:,} codes.")


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a spreadsheet stores 123456 as 123456.0
    return str(value).strip()


def _code_column(
    rows: Iterable[Iterable[object]], *, header: str = HEADER, max_rows: int | None = None, noun: str = "codes"
) -> Iterator[str]:
    """The values of the `header` column, header and empty rows left out, with the row bound enforced."""
    max_rows = max_rows or _limits()["rows"]
    column = 0
    for number, row in enumerate(rows, start=1):
        if number > max_rows:
            raise _too_large(f"An upload holds at most {max_rows - 1:,} {noun} (rows, empty ones included).")
        cells = row if isinstance(row, (list, tuple)) else list(row)
        if number == 1:
            texts = [_cell_text(cell).lower() for cell in cells[:64]]
            if header in texts:
                column = texts.index(header)
                continue
        value = _cell_text(cells[column]) if len(cells) > column else ""
        if "\x00" in value:
            raise _unreadable("The file is neither CSV text nor an XLSX workbook.")
        if value:
            yield value


def _csv_rows(file: BinaryIO) -> Iterator[list[str]]:
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    try:
        yield from csv.reader(text)
    except UnicodeDecodeError:
        raise _unreadable("A CSV file must be UTF-8 text.") from None
    except csv.Error as exc:
        raise _unreadable(f"The CSV file cannot be read: {exc}.") from None
    finally:
        try:
            text.detach()  # leaves the caller's file open
        except ValueError:  # closed already
            pass


def _xlsx_rows(file: BinaryIO) -> Iterator[tuple]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a damaged file; none of them is the server's fault
        raise _unreadable("The XLSX workbook cannot be read.", type(exc).__name__) from None
    try:
        if not workbook.worksheets:
            return
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # stream to the sheet's real end, whatever its <dimension> claims
        yield from sheet.iter_rows(values_only=True)
    except ApplicationError:
        raise
    except Exception as exc:
        raise _unreadable("The XLSX workbook cannot be read.", type(exc).__name__) from None
    finally:
        workbook.close()


def codes_from_file(*, file: BinaryIO | None = None, data: bytes | None = None, filename: str = "") -> list[str]:
    """The codes in an uploaded CSV or XLSX file (recognised by content, not by name), within the upload bounds.

    `file` is a binary, seekable file (an upload spooled to disk, or the job's stored copy); `data` its bytes.
    """
    if file is None:
        file = io.BytesIO(data or b"")
    shape = upload_inspect(file, filename)
    rows = _xlsx_rows(file) if shape.format == "xlsx" else _csv_rows(file)
    return list(_code_column(rows))


def user_ids_from_file(*, file: BinaryIO | None = None, data: bytes | None = None, filename: str = "") -> list[str]:
    """The end-user ids in an uploaded CSV or XLSX file (column `user_id`, else the first), within the same bounds
    as a code upload and at most COUPONS["MAX_DISTRIBUTION_USERS"] rows. Raw: books.services.distribution checks them."""
    if file is None:
        file = io.BytesIO(data or b"")
    shape = upload_inspect(file, filename)
    rows = _xlsx_rows(file) if shape.format == "xlsx" else _csv_rows(file)
    max_rows = settings.COUPONS["MAX_DISTRIBUTION_USERS"] + 1  # a header row, then the ids
    return list(_code_column(rows, header=USER_ID_HEADER, max_rows=max_rows, noun="user ids"))
