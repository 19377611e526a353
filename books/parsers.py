"""Reading uploaded code files (CSV or XLSX) into a list of codes, for the API and the admin alike.

The codes are in the first column; a first row whose cell reads `code` (any case) is a header and is skipped,
as are empty rows. The list is returned raw: codes_upload / upload_request normalise and check every value.
"""

import csv
import io
import zipfile
from collections.abc import Iterable

from django.conf import settings

from core.exceptions import ApplicationError

XLSX_MAGIC = b"PK\x03\x04"
HEADER = "code"


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a spreadsheet stores 123456 as 123456.0
    return str(value).strip()


def _first_column(rows: Iterable[Iterable[object]]) -> list[str]:
    limit = settings.COUPONS["MAX_CODES_PER_REQUEST"]
    codes: list[str] = []
    first = True
    for row in rows:
        cells = list(row)[:1]
        value = _cell_text(cells[0]) if cells else ""
        if first:
            first = False
            if value.lower() == HEADER:
                continue
        if not value:
            continue
        codes.append(value)
        if len(codes) > limit:
            raise ApplicationError("invalid_input", f"An upload holds at most {limit:,} codes.", {"field": "file"})
    return codes


def _csv_codes(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError("invalid_input", "A CSV file must be UTF-8 text.", {"field": "file"}) from None
    if "\x00" in text:
        raise ApplicationError("invalid_input", "The file is neither CSV text nor an XLSX workbook.", {"field": "file"})
    try:
        return _first_column(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ApplicationError("invalid_input", f"The CSV file cannot be read: {exc}.", {"field": "file"}) from None


def _xlsx_codes(data: bytes) -> list[str]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError) as exc:
        raise ApplicationError(
            "invalid_input", "The XLSX workbook cannot be read.", {"field": "file", "reason": str(exc)[:200]}
        ) from None
    except Exception as exc:  # openpyxl raises many kinds on a damaged file; none of them is the server's fault
        raise ApplicationError(
            "invalid_input", "The XLSX workbook cannot be read.", {"field": "file", "reason": type(exc).__name__}
        ) from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            return []
        return _first_column(sheet.iter_rows(max_col=1, values_only=True))
    except ApplicationError:
        raise
    except Exception as exc:
        raise ApplicationError(
            "invalid_input", "The XLSX workbook cannot be read.", {"field": "file", "reason": type(exc).__name__}
        ) from None
    finally:
        workbook.close()


def codes_from_file(*, data: bytes, filename: str = "") -> list[str]:
    """The codes in an uploaded CSV or XLSX file (recognised by content, not by name)."""
    if data.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx"):
        return _xlsx_codes(data)
    return _csv_codes(data)
