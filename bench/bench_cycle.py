"""Benchmark 3a: the assign -> lock -> redeem cycle with 16 concurrent clients, through the services, against the
same statements issued as raw SQL on psycopg 3 (target: the services reach at least 40% of raw throughput).

The raw side issues the statements the services need (per-user row lock, limit counts, the SKIP LOCKED claim,
the conditional updates, the event and redemption inserts), each step in its own transaction as in the
services, but without the ORM's extra look-ups and re-reads: it is the floor the service layer is measured on.
"""

import multiprocessing
import os
import secrets
import time
import traceback
from datetime import timedelta
from pathlib import Path

from .common import Result, raw_connection, scale, tables_truncate

CLIENTS = 16


def _machine_busy() -> tuple[int, int]:
    """(all, idle) CPU ticks of the whole machine since boot, from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


def _run_clients(worker, cycles: int) -> tuple[float, float, float]:
    """Run CLIENTS processes (forked, one database connection each) doing cycles // CLIENTS cycles each.

    Returns the wall seconds, the clients' CPU per cycle in ms (the children's rusage), and the share of the whole
    machine's CPU that was busy meanwhile: together they tell a CPU-bound run from one that waits.

    Processes, not threads: 16 clients of a service are 16 processes in production (gunicorn workers), and
    threads would measure the interpreter lock of one process rather than the service.
    """
    from django.db import connections

    per_client = cycles // CLIENTS
    connections.close_all()  # a forked child must never share its parent's socket
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(CLIENTS + 1)
    processes = [context.Process(target=_client_main, args=(worker, i, per_client, barrier)) for i in range(CLIENTS)]
    for process in processes:
        process.start()
    before, machine_before = os.times(), _machine_busy()
    barrier.wait()
    start = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - start
    after, machine_after = os.times(), _machine_busy()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark client(s) failed")
    client_cpu = after.children_user + after.children_system - before.children_user - before.children_system
    total, idle = (machine_after[0] - machine_before[0]), (machine_after[1] - machine_before[1])
    return elapsed, client_cpu / cycles * 1000, (total - idle) / max(total, 1)


def _client_main(worker, index: int, cycles: int, barrier) -> None:
    try:
        worker(index, cycles, barrier)
    except BaseException:
        traceback.print_exc()
        barrier.abort()
        raise


def _service_worker(tenant, book):
    from django.db import connection

    from books.services.codes import code_assign_random, code_lock
    from core.actors import Actor
    from redemptions.services import code_redeem

    actor = Actor.system("bench")

    def worker(index: int, cycles: int, barrier) -> None:
        try:
            barrier.wait()
            for i in range(cycles):
                user = f"svc-{index}-{i}"
                code = code_assign_random(tenant=tenant, book_id=book.pk, user_id=user, actor=actor)
                reservation = code_lock(tenant=tenant, code=code.code, user_id=user, actor=actor)
                code_redeem(tenant=tenant, code=code.code, user_id=user, token=reservation.token, actor=actor, amount="10")
        finally:
            connection.close()

    return worker


def _raw_worker(tenant_id: int, book_id: int):
    def worker(index: int, cycles: int, barrier) -> None:
        with raw_connection() as conn:
            barrier.wait()
            for i in range(cycles):
                user = f"raw-{index}-{i}"
                with conn.transaction():  # assign
                    conn.execute(
                        "INSERT INTO books_bookuser (book_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", [book_id, user]
                    )
                    conn.execute("SELECT id FROM books_bookuser WHERE book_id = %s AND user_id = %s FOR UPDATE", [book_id, user])
                    conn.execute(
                        "SELECT count(*) FROM books_code WHERE book_id = %s AND user_id = %s AND state <> 'voided'",
                        [book_id, user],
                    )
                    start = secrets.randbits(63)
                    row = (
                        conn.execute(
                            "SELECT id, code FROM books_code WHERE book_id = %s AND state = 'free' AND shuffle >= %s "
                            "ORDER BY shuffle LIMIT 1 FOR UPDATE SKIP LOCKED",
                            [book_id, start],
                        ).fetchone()
                        or conn.execute(
                            "SELECT id, code FROM books_code WHERE book_id = %s AND state = 'free' AND shuffle < %s "
                            "ORDER BY shuffle LIMIT 1 FOR UPDATE SKIP LOCKED",
                            [book_id, start],
                        ).fetchone()
                    )
                    code_id = row[0]
                    conn.execute(
                        "UPDATE books_code SET state = 'assigned', user_id = %s, assigned_at = now() WHERE id = %s AND state = 'free'",
                        [user, code_id],
                    )
                    conn.execute(
                        "INSERT INTO books_event (tenant_id, book_id, code_id, kind, user_id, actor_type, actor_id, data, created_at) "
                        "VALUES (%s, %s, %s, 'assigned', %s, 'system', 'bench', '{}', now())",
                        [tenant_id, book_id, code_id, user],
                    )
                token = secrets.token_urlsafe(24)
                with conn.transaction():  # lock
                    conn.execute(
                        "INSERT INTO books_bookuser (book_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", [book_id, user]
                    )
                    conn.execute("SELECT id FROM books_bookuser WHERE book_id = %s AND user_id = %s FOR UPDATE", [book_id, user])
                    conn.execute("SELECT * FROM books_code WHERE id = %s FOR UPDATE", [code_id])
                    conn.execute(
                        "SELECT count(*) FROM books_reservation WHERE code_id = %s AND status = 'active' AND expires_at > now()",
                        [code_id],
                    )
                    conn.execute(
                        "SELECT count(*) FROM redemptions_redemption WHERE book_id = %s AND user_id = %s AND reversed_at IS NULL",
                        [book_id, user],
                    )
                    conn.execute(
                        "SELECT count(*) FROM books_reservation WHERE book_id = %s AND user_id = %s AND status = 'active' AND expires_at > now()",
                        [book_id, user],
                    )
                    reservation_id = conn.execute(
                        "INSERT INTO books_reservation (tenant_id, book_id, code_id, user_id, token, status, created_at, expires_at) "
                        "VALUES (%s, %s, %s, %s, %s, 'active', now(), %s) RETURNING id",
                        [tenant_id, book_id, code_id, user, token, _in_five_minutes()],
                    ).fetchone()[0]
                    conn.execute(
                        "INSERT INTO books_event (tenant_id, book_id, code_id, reservation_id, kind, user_id, actor_type, actor_id, data, created_at) "
                        "VALUES (%s, %s, %s, %s, 'locked', %s, 'system', 'bench', '{}', now())",
                        [tenant_id, book_id, code_id, reservation_id, user],
                    )
                with conn.transaction():  # redeem with the token
                    conn.execute("SELECT * FROM books_code WHERE id = %s FOR UPDATE", [code_id])
                    conn.execute(
                        "SELECT * FROM books_reservation WHERE code_id = %s AND token = %s AND user_id = %s FOR UPDATE",
                        [code_id, token, user],
                    )
                    conn.execute(
                        "UPDATE books_reservation SET status = 'consumed', ended_at = now() WHERE id = %s AND status = 'active'",
                        [reservation_id],
                    )
                    conn.execute(
                        "UPDATE books_code SET redeemed_count = redeemed_count + 1, "
                        "state = CASE WHEN max_uses <= redeemed_count + 1 THEN 'redeemed' ELSE state END "
                        "WHERE id = %s AND redeemed_count < max_uses",
                        [code_id],
                    )
                    redemption_id = conn.execute(
                        "INSERT INTO redemptions_redemption (tenant_id, book_id, code_id, reservation_id, user_id, redeemed_at, order_ref, "
                        "amount, product_id, discount, currency, actor_type, actor_id, idempotency_key, reversal_reason, reversed_by_type, "
                        "reversed_by_id) VALUES (%s, %s, %s, %s, %s, now(), '', 10, '', 1, '', 'system', 'bench', '', '', '', '') RETURNING id",
                        [tenant_id, book_id, code_id, reservation_id, user],
                    ).fetchone()[0]
                    conn.execute(
                        "INSERT INTO books_event (tenant_id, book_id, code_id, reservation_id, kind, user_id, actor_type, actor_id, data, created_at) "
                        "VALUES (%s, %s, %s, %s, 'redeemed', %s, 'system', 'bench', %s, now())",
                        [tenant_id, book_id, code_id, reservation_id, user, f'{{"redemption": {redemption_id}}}'],
                    )

    return worker


def _in_five_minutes():
    from django.utils import timezone

    return timezone.now() + timedelta(minutes=5)


def run() -> Result:
    from books.factories import CouponBookFactory, TenantFactory
    from books.services.code_creation import codes_generate
    from core.actors import Actor

    cycles = scale(4000) // CLIENTS * CLIENTS
    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    codes_generate(book=book, count=2 * cycles, actor=Actor.system("bench"))
    raw_seconds, raw_cpu, raw_busy = _run_clients(_raw_worker(tenant.pk, book.pk), cycles)
    service_seconds, service_cpu, service_busy = _run_clients(_service_worker(tenant, book), cycles)
    raw_rate, service_rate = cycles / raw_seconds, cycles / service_seconds
    ratio = service_rate / raw_rate
    cores = os.cpu_count() or 1
    return Result(
        name=f"assign-lock-redeem, {CLIENTS} clients, {cycles:,} cycles",
        figure=f"{service_rate:,.0f} cycles/s",
        baseline=f"raw SQL {raw_rate:,.0f} cycles/s",
        ratio=ratio,
        target=">= 0.40 of raw",
        ok=ratio >= 0.40,
        notes=[
            f"client CPU per cycle: services {service_cpu:.1f} ms, raw SQL {raw_cpu:.1f} ms; machine busy "
            f"{service_busy:.0%} and {raw_busy:.0%}; the rest of each cycle's CPU ({cores} cores) is PostgreSQL's "
            f"and the system's: services {cores * service_busy * 1000 / service_rate - service_cpu:.1f} ms, "
            f"raw {cores * raw_busy * 1000 / raw_rate - raw_cpu:.1f} ms"
        ],
    )
