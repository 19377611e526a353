"""Spreadsheets built in the tests: honest XLSX files, and bombs (a small file inflating past the bounds)."""

import io
import zipfile

from openpyxl import Workbook

SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
SHEET_TAIL = b"</sheetData></worksheet>"
CHUNK = 1024 * 1024


def xlsx_of(rows: list[list[object]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _with_parts(replacements: dict[str, callable]) -> bytes:
    """An openpyxl workbook of one code whose parts named in `replacements` are written by writer(handle)."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_of([["code"], ["SAFE-1"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for entry in source.infolist():
            if entry.filename in replacements:
                continue
            archive.writestr(entry, source.read(entry.filename))
        for name, writer in replacements.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as handle:
                writer(handle)
    return out.getvalue()


def empty_rows_bomb(rows: int) -> bytes:
    """A sheet of `rows` empty <row/> elements: 6 bytes each inflated, almost nothing compressed."""

    def write(handle):
        handle.write(SHEET_HEAD)
        block = b"<row/>" * (CHUNK // 6)
        left = rows
        while left > 0:
            count = min(left, CHUNK // 6)
            handle.write(block if count == CHUNK // 6 else b"<row/>" * count)
            left -= count
        handle.write(SHEET_TAIL)

    return _with_parts({"xl/worksheets/sheet1.xml": write})


def huge_shared_string_bomb(size: int) -> bytes:
    """One shared string of `size` letters, referenced by the sheet's only cell."""

    def strings(handle):
        handle.write(
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>'
        )
        left = size
        while left > 0:
            handle.write(b"A" * min(left, CHUNK))
            left -= CHUNK
        handle.write(b"</t></si></sst>")

    def sheet(handle):
        handle.write(SHEET_HEAD + b'<row r="1"><c r="A1" t="s"><v>0</v></c></row>' + SHEET_TAIL)

    return _with_parts({"xl/sharedStrings.xml": strings, "xl/worksheets/sheet1.xml": sheet})


def declared_rows_sheet(declared: int) -> bytes:
    """A small sheet whose <dimension> claims `declared` rows."""

    def sheet(handle):
        handle.write(
            SHEET_HEAD.replace(b"<sheetData>", f'<dimension ref="A1:A{declared}"/><sheetData>'.encode())
            + b'<row r="1"><c r="A1" t="inlineStr"><is><t>CODE-1</t></is></c></row>'
            + SHEET_TAIL
        )

    return _with_parts({"xl/worksheets/sheet1.xml": sheet})


def inflated_size(data: bytes) -> int:
    return sum(entry.file_size for entry in zipfile.ZipFile(io.BytesIO(data)).infolist())
