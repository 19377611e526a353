"""Benchmark 4: 64 concurrent redeemers of ONE shared code with 1,000 uses, through the services, against the
same statements as raw SQL: throughput, p50/p99 latency, and zero oversell checked in the database afterwards."""

import threading
import time

from .common import Result, median, percentile, raw_connection, scale, tables_truncate

REDEEMERS = 64


def _hammer(attempt) -> tuple[float, list[float], int]:
    """Run REDEEMERS threads that each call attempt(index, i) until it returns False (sold out)."""
    barrier = threading.Barrier(REDEEMERS + 1)
    latencies: list[float] = []
    successes = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            i = 0
            while True:
                started = time.perf_counter()
                ok = attempt(index, i)
                spent = time.perf_counter() - started
                with lock:
                    latencies.append(spent)
                    successes[0] += ok
                if not ok:
                    return
                i += 1
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(REDEEMERS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start, latencies, successes[0]


def _service_attempt(tenant, code_value):
    from core.actors import Actor
    from core.exceptions import ApplicationError
    from redemptions.services import code_redeem

    actor = Actor.system("bench")

    def attempt(index: int, i: int) -> bool:
        try:
            code_redeem(tenant=tenant, code=code_value, user_id=f"svc-{index}-{i}", actor=actor, amount="10")
        except ApplicationError as exc:
            if exc.code in ("code_exhausted", "code_locked"):
                return False
            raise
        return True

    return attempt


def _raw_attempt(tenant_id: int, book_id: int, code_id: int):
    local = threading.local()

    def attempt(index: int, i: int) -> bool:
        if not hasattr(local, "conn"):
            local.conn = raw_connection()
        conn = local.conn
        user = f"raw-{index}-{i}"
        with conn.transaction():
            conn.execute("INSERT INTO books_bookuser (book_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", [book_id, user])
            conn.execute("SELECT id FROM books_bookuser WHERE book_id = %s AND user_id = %s FOR UPDATE", [book_id, user])
            row = conn.execute("SELECT redeemed_count, max_uses FROM books_code WHERE id = %s FOR UPDATE", [code_id]).fetchone()
            held = conn.execute(
                "SELECT count(*) FROM books_reservation WHERE code_id = %s AND status = 'active' AND expires_at > now()",
                [code_id],
            ).fetchone()[0]
            if row[0] + held >= row[1]:
                return False
            conn.execute(
                "SELECT count(*) FROM redemptions_redemption WHERE book_id = %s AND user_id = %s AND reversed_at IS NULL",
                [book_id, user],
            )
            conn.execute(
                "SELECT count(*) FROM books_reservation WHERE book_id = %s AND user_id = %s AND status = 'active' AND expires_at > now()",
                [book_id, user],
            )
            conn.execute(
                "UPDATE books_code SET redeemed_count = redeemed_count + 1, "
                "state = CASE WHEN max_uses <= redeemed_count + 1 THEN 'redeemed' ELSE state END "
                "WHERE id = %s AND redeemed_count < max_uses",
                [code_id],
            )
            redemption_id = conn.execute(
                "INSERT INTO redemptions_redemption (tenant_id, book_id, code_id, user_id, redeemed_at, order_ref, amount, product_id, "
                "discount, currency, actor_type, actor_id, idempotency_key, reversal_reason, reversed_by_type, reversed_by_id) "
                "VALUES (%s, %s, %s, %s, now(), '', 10, '', 1, '', 'system', 'bench', '', '', '', '') RETURNING id",
                [tenant_id, book_id, code_id, user],
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO books_event (tenant_id, book_id, code_id, kind, user_id, actor_type, actor_id, data, created_at) "
                "VALUES (%s, %s, %s, 'redeemed', %s, 'system', 'bench', %s, now())",
                [tenant_id, book_id, code_id, user, f'{{"redemption": {redemption_id}}}'],
            )
        return True

    return attempt, local


def _shared_code(uses: int, value: str):
    from books.factories import CouponBookFactory, TenantFactory
    from books.services.code_creation import codes_upload
    from core.actors import Actor

    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=uses)
    codes_upload(book=book, codes=[value], actor=Actor.system("bench"))
    return tenant, book


def run() -> Result:
    from books.models import Code
    from redemptions.models import Redemption

    uses = scale(1000)
    tables_truncate()
    tenant, book = _shared_code(uses, "RAWHOT")
    code = Code.objects.get(book=book)
    attempt, _ = _raw_attempt(tenant.pk, book.pk, code.pk)
    raw_seconds, raw_latencies, raw_ok = _hammer(attempt)

    tenant, book = _shared_code(uses, "SVCHOT")
    service_seconds, latencies, service_ok = _hammer(_service_attempt(tenant, "svchot"))
    code = Code.objects.get(book=book)
    stored = Redemption.objects.filter(book=book).count()
    oversold = stored > uses or code.redeemed_count != stored or service_ok != uses
    service_rate, raw_rate = uses / service_seconds, uses / raw_seconds
    ok = not oversold and raw_ok == uses
    return Result(
        name=f"{REDEEMERS} redeemers of one code with {uses:,} uses",
        figure=(
            f"{service_rate:,.0f} redemptions/s, p50 {median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms; "
            f"{stored:,} stored, {'OVERSOLD' if oversold else 'no oversell'}"
        ),
        baseline=f"raw SQL {raw_rate:,.0f}/s, p99 {percentile(raw_latencies, 99) * 1000:.0f} ms",
        ratio=service_rate / raw_rate,
        target="zero oversell",
        ok=ok,
    )
