"""Benchmark 1: generate N codes into one book through the service, against a raw COPY of the same rows.

Both start from an empty codes table with all its indexes, and both include their commit. The raw side writes
the very rows the service produced (read back between the two runs, outside the timings).
"""

from .common import Result, raw_connection, scale, tables_truncate, timed

COLUMNS = "tenant_id, book_id, code, state, max_uses, book_limited, redeemed_count, shuffle, created_at"


def copy_rows(rows) -> None:
    with raw_connection() as conn:
        with conn.cursor() as cursor, cursor.copy(f"COPY books_code ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()


def raw_copy_seconds(*, book, expected: int) -> float:
    """Read back the book's codes, empty the tables, and time a raw COPY of the same rows into a new book."""
    from books.models import Code
    from tests.factories import CouponBookFactory, TenantFactory

    rows = list(Code.objects.filter(book=book).values_list(*[c.strip() for c in COLUMNS.split(",")]))
    assert len(rows) == expected, (len(rows), expected)
    tables_truncate()
    book = CouponBookFactory(tenant=TenantFactory())
    rows = [(book.tenant_id, book.pk, *row[2:]) for row in rows]
    times: dict[str, float] = {}
    with timed(times, "raw"):
        copy_rows(rows)
    return times["raw"]


def run() -> Result:
    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tests.factories import CouponBookFactory, TenantFactory

    n = scale(1_000_000)
    times: dict[str, float] = {}
    tables_truncate()
    book = CouponBookFactory(tenant=TenantFactory())
    with timed(times, "service"):
        codes_generate(book=book, count=n, actor=Actor.system("bench"))
    times["raw"] = raw_copy_seconds(book=book, expected=n)
    ratio = times["service"] / times["raw"]
    return Result(
        name=f"generate {n:,} codes",
        figure=f"{times['service']:.2f} s ({n / times['service']:,.0f} codes/s)",
        baseline=f"raw COPY {times['raw']:.2f} s",
        ratio=ratio,
        target="<= 2.0x",
        ok=ratio <= 2.0,
    )
