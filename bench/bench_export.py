"""Benchmark 5: export N redemptions to Excel through redemptions.exports, against a raw openpyxl write-only workbook
of the same rows read with a raw psycopg cursor. Each side runs in a fresh process of its own, which reports its
time and its peak resident memory (targets: at most 1.3x the raw time, peak under 250 MB).

SPEC asks for memory "flat whatever the row count", so the service also exports a tenant with ten times fewer
rows: flat means both peaks are under 250 MB and ten times the rows raise the peak by at most FLAT_GROWTH.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Result, raw_connection, scale, tables_truncate, timed

ROOT = Path(__file__).resolve().parent.parent
# Ten times the rows may raise the service's peak memory by at most this share (the interpreter, Django and
# openpyxl's fixed cost dominate a flat profile; a profile that grows with the rows grows far more).
FLAT_GROWTH = 0.25
RAW_SQL = """
    SELECT r.id, r.redeemed_at, r.book_id, b.name, c.code, r.user_id, r.order_ref, r.product_id, r.amount, r.discount,
           r.currency, r.actor_type, r.actor_id, r.reversed_at, r.reversal_reason, r.reversed_by_type, r.reversed_by_id
    FROM redemptions_redemption r JOIN books_couponbook b ON b.id = r.book_id JOIN books_code c ON c.id = r.code_id
    WHERE r.tenant_id = %s ORDER BY r.redeemed_at, r.id
"""


def _seed(n: int) -> int:
    """N redemptions of one tenant over 1,000 codes and 90 days, loaded with COPY (not what is measured)."""
    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tests.factories import CouponBookFactory, TenantFactory

    tenant = TenantFactory(timezone="Europe/Berlin")
    book = CouponBookFactory(tenant=tenant, uses_per_code=None, max_redemptions_per_user=None)
    codes_generate(book=book, count=1000, actor=Actor.system("bench"))
    with raw_connection() as conn:
        code_ids = [row[0] for row in conn.execute("SELECT id FROM books_code WHERE book_id = %s", [book.pk])]
        columns = (
            "tenant_id, book_id, code_id, user_id, redeemed_at, order_ref, amount, product_id, discount, currency, actor_type, "
            "actor_id, idempotency_key, reversal_reason, reversed_by_type, reversed_by_id"
        )
        with conn.cursor() as cursor, cursor.copy(f"COPY redemptions_redemption ({columns}) FROM STDIN") as copy:
            start = time.time() - 90 * 86400
            for i in range(n):
                order = f'=HYPERLINK("x",{i})' if i % 1000 == 0 else f"ORDER-{i}"
                copy.write_row(
                    (
                        tenant.pk,
                        book.pk,
                        code_ids[i % 1000],
                        f"user-{i % 50000}",
                        _ts(start + i * 90 * 86400 / n),
                        order,
                        "40.00",
                        "SKU-1",
                        "4.00",
                        "",
                        "api_client",
                        "cli_bench",
                        "",
                        "",
                        "",
                        "",
                    )
                )
        conn.commit()
    return tenant.pk


def _ts(seconds: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def _child(side: str, tenant_id: int, path: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.bench_export", side, str(tenant_id), path],
        cwd=ROOT,
        env=os.environ,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _child_main(side: str, tenant_id: int, path: str) -> None:
    """In a fresh process: write the workbook one way, print time and peak memory as JSON."""
    from .common import django_setup

    django_setup()
    times: dict[str, float] = {}
    if side == "service":
        from redemptions.exports import redemptions_workbook_write
        from redemptions.models import Redemption
        from tenants.models import Tenant

        tenant = Tenant.objects.get(pk=tenant_id)
        with timed(times, "seconds"):
            rows = redemptions_workbook_write(tenant=tenant, queryset=Redemption.objects.all(), out=path)
    else:
        from openpyxl import Workbook

        with timed(times, "seconds"):
            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet("Redemptions")
            rows = 0
            with raw_connection() as conn, conn.cursor(name="export") as cursor:
                cursor.itersize = 2000
                cursor.execute(RAW_SQL, [tenant_id])
                for row in cursor:
                    sheet.append(
                        row[:1]
                        + (row[1].replace(tzinfo=None),)
                        + row[2:13]
                        + (row[13].replace(tzinfo=None) if row[13] else None,)
                        + row[14:]
                    )
                    rows += 1
            workbook.save(path)
    # VmHWM: this process's own peak resident memory. (ru_maxrss would not do: Linux carries it across fork and
    # exec, so a child would report its parent's peak.)
    peak_kb = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")
    )
    peak_mb = peak_kb / 1024
    print(json.dumps({"seconds": times["seconds"], "peak_mb": peak_mb, "rows": rows}))


def run() -> list[Result]:
    n = scale(1_000_000)
    small = max(1, n // 10)
    tables_truncate()
    tenant_id = _seed(n)
    small_tenant_id = _seed(small)
    with tempfile.TemporaryDirectory() as folder:
        raw = _child("raw", tenant_id, f"{folder}/raw.xlsx")
        service = _child("service", tenant_id, f"{folder}/service.xlsx")
        size_mb = Path(f"{folder}/service.xlsx").stat().st_size / 1e6
        tenth = _child("service", small_tenant_id, f"{folder}/small.xlsx")
    assert service["rows"] == raw["rows"] == n, (service, raw, n)
    assert tenth["rows"] == small, (tenth, small)
    ratio = service["seconds"] / raw["seconds"]
    growth = service["peak_mb"] / tenth["peak_mb"] - 1
    return [
        Result(
            name=f"export {n:,} redemptions to Excel ({size_mb:.0f} MB)",
            figure=f"{service['seconds']:.1f} s, peak {service['peak_mb']:.0f} MB",
            baseline=f"raw openpyxl {raw['seconds']:.1f} s, peak {raw['peak_mb']:.0f} MB",
            ratio=ratio,
            target="<= 1.3x, peak < 250 MB",
            ok=ratio <= 1.3 and service["peak_mb"] < 250,
        ),
        Result(
            name=f"export memory: {small:,} against {n:,} redemptions",
            figure=f"peak {tenth['peak_mb']:.0f} MB -> {service['peak_mb']:.0f} MB ({growth:+.0%})",
            baseline=f"raw openpyxl at {n:,}: peak {raw['peak_mb']:.0f} MB",
            ratio=service["peak_mb"] / tenth["peak_mb"],
            target=f"flat: both < 250 MB, 10x the rows <= +{FLAT_GROWTH:.0%}",
            ok=max(service["peak_mb"], tenth["peak_mb"]) < 250 and growth <= FLAT_GROWTH,
        ),
    ]


if __name__ == "__main__":
    _child_main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
