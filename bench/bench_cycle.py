"""Benchmark 3a: the assign -> lock -> redeem cycle with 16 concurrent clients, through the services, against the
same statements issued as raw SQL on psycopg 3 (target: the services reach at least 40% of raw throughput).

The raw side issues the very statements the services issue for a cycle, one for one (the same tables, rows, locks
and joins; BEGIN and COMMIT included), each step in its own transaction as in the services, without the ORM: it is
the floor the service layer is measured on. Before timing, one cycle of each is recorded and the two statement
sequences are compared shape for shape; the benchmark stops if they differ.
"""

import multiprocessing
import os
import secrets
import time
import traceback
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from .common import Result, raw_connection, scale, tables_truncate

CLIENTS = 16


def _machine_busy() -> tuple[int, int]:
    """(all, idle) CPU ticks of the whole machine since boot, from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


# Cycles each client runs before the start, not timed: its connection opened and its statements prepared (psycopg
# prepares a statement on its 5th run, settings' DB_PREPARE_THRESHOLD), as in a long-lived worker. Without them a
# short run measured the raw side's first, unprepared statements: at BENCH_SCALE=0.05 (10 cycles a client) the raw
# rate read 358 cycles/s against 690/s at full scale.
WARM_UP_CYCLES = 6


def _run_clients(worker, cycles: int) -> tuple[float, float, float]:
    """Run CLIENTS processes (forked, one database connection each) doing WARM_UP_CYCLES, then, timed,
    cycles // CLIENTS cycles each.

    Returns the wall seconds, the clients' CPU per timed cycle in ms (each client's own, from the start), and the
    share of the whole machine's CPU that was busy meanwhile: together they tell a CPU-bound run from one that waits.

    Processes, not threads: 16 clients of a service are 16 processes in production (gunicorn workers), and
    threads would measure the interpreter lock of one process rather than the service.
    """
    from django.db import connections

    per_client = cycles // CLIENTS
    connections.close_all()  # a forked child must never share its parent's socket
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(CLIENTS + 1)
    spent = context.Queue()
    processes = [context.Process(target=_client_main, args=(worker, i, per_client, barrier, spent)) for i in range(CLIENTS)]
    for process in processes:
        process.start()
    barrier.wait()
    start, machine_before = time.perf_counter(), _machine_busy()
    client_cpu = sum(spent.get() for _ in processes)  # before join: a full pipe would block the children's exit
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - start
    machine_after = _machine_busy()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark client(s) failed")
    total, idle = (machine_after[0] - machine_before[0]), (machine_after[1] - machine_before[1])
    return elapsed, client_cpu / cycles * 1000, (total - idle) / max(total, 1)


class _Start:
    """The barrier a client waits on after its warm-up; notes the client's CPU when the timed cycles start."""

    def __init__(self, barrier) -> None:
        self.barrier, self.cpu = barrier, 0.0

    def wait(self) -> None:
        self.barrier.wait()
        self.cpu = time.process_time()


def _client_main(worker, index: int, cycles: int, barrier, spent) -> None:
    start = _Start(barrier)
    try:
        worker(index, cycles, start)
    except BaseException:
        traceback.print_exc()
        barrier.abort()
        raise
    spent.put(time.process_time() - start.cpu)


def service_cycle(*, tenant, book, user_id: str, actor) -> None:
    """One assign -> lock -> redeem cycle through the services (also profiled by bench/profile_cycle.py)."""
    from books.services.codes import code_assign_random, code_redeem, code_reserve

    code = code_assign_random(tenant=tenant, book_id=book.pk, user_id=user_id, actor=actor)
    reservation = code_reserve(tenant=tenant, code=code.code, user_id=user_id, actor=actor)
    code_redeem(
        tenant=tenant,
        code=code.code,
        user_id=user_id,
        token=reservation.token,
        actor=actor,
        amount=Decimal("10"),
        currency="EUR",
    )


def _service_worker(tenant, book):
    from django.db import connection

    from core.actors import Actor

    actor = Actor.system("bench")

    def worker(index: int, cycles: int, barrier) -> None:
        try:
            for i in range(WARM_UP_CYCLES):
                service_cycle(tenant=tenant, book=book, user_id=f"svc-warm-{index}-{i}", actor=actor)
            barrier.wait()
            for i in range(cycles):
                user = f"svc-{index}-{i}"
                service_cycle(tenant=tenant, book=book, user_id=user, actor=actor)
        finally:
            connection.close()

    return worker


# The raw side's statements, one for one with what the services issue for a cycle (books/lifecycle_sql.py; BEGIN
# and COMMIT included): the same tables, rows, columns, locks, joins and CTEs, without the ORM and without the
# Python rules between them. run() checks the two sequences match before timing.
_OUTBOX = (
    "outbox AS (INSERT INTO webhooks_webhookdelivery (tenant_id, endpoint_id, message_id, event_type, body, ordering_key, "
    "status, attempts, next_attempt_at, last_error, created_at, give_up_at) SELECT e.tenant_id, e.id, 'msg_bench', "
    "'{kind}', concat('{{\"type\":\"{kind}\",\"data\":{{\"event\":', to_json(event.id), '}}}}'), 'code:' || event.code_id, "
    "'pending', 0, now(), '', now(), now() FROM webhooks_webhookendpoint e, event, {source} WHERE e.tenant_id = %(tenant)s "
    "AND e.is_active AND e.events @> '[\"{kind}\"]'::jsonb ORDER BY e.id RETURNING id)"
)
_EVENT = (
    "event AS (INSERT INTO books_event (tenant_id, book_id, code_id, reservation_id, kind, user_id, actor_type, actor_id, "
    "data, created_at) SELECT %(tenant)s, %(book)s, {code}, {reservation}, '{kind}', %(user)s, 'system', 'bench', "
    "{data}, now() FROM {source} RETURNING id, code_id)"
)


def _event_and_outbox(*, code: str, reservation: str, kind: str, webhook: str, data: str, source: str) -> str:
    """The event and outbox CTEs of a write statement, as lifecycle_sql writes them."""
    event = _EVENT.format(code=code, reservation=reservation, kind=kind, data=data, source=source)
    return f"{event}, {_OUTBOX.format(kind=webhook, source=source)}"


_USE_COUNTS = (
    "(SELECT count(*) FROM books_reservation WHERE code_id = %(code_id)s AND status = 'active' AND expires_at > now()), "
    "(SELECT count(*) FROM redemptions_redemption WHERE book_id = %(book)s AND user_id = %(user)s AND reversed_at IS NULL), "
    "(SELECT count(*) FROM books_reservation WHERE book_id = %(book)s AND user_id = %(user)s AND status = 'active' "
    "AND expires_at > now())"
)
CLAIM = (
    "WITH free AS (SELECT id FROM books_code WHERE book_id = %(book)s AND state = 'free' AND shuffle >= %(start)s "
    "ORDER BY shuffle LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED), "
    "claimed AS (UPDATE books_code c SET state = 'assigned', user_id = %(user)s, assigned_at = now() FROM free "
    "WHERE c.id = free.id AND c.state = 'free' RETURNING c.*), "
    + _event_and_outbox(
        code="claimed.id",
        reservation="NULL",
        kind="assigned",
        webhook="code.assigned",
        data="'{\"random\": true}'",
        source="claimed",
    )
    + " SELECT (SELECT count(*) FROM books_code WHERE tenant_id = %(tenant)s AND user_id = %(user)s"
    " AND book_id = %(book)s AND state <> 'voided'), "
    "(SELECT array_agg(id) FROM outbox), claimed.* FROM (SELECT 1) AS one LEFT JOIN claimed ON true"
)
CLAIM_WRAPPED = CLAIM.replace("shuffle >= ", "shuffle < ")
ASSIGN = [
    (
        "WITH book AS (SELECT * FROM books_couponbook WHERE id = %(book)s AND tenant_id = %(tenant)s), "
        "user_lock AS (INSERT INTO books_bookuser (book_id, user_id) SELECT id, %(user)s FROM book "
        "WHERE max_codes_per_user IS NOT NULL ON CONFLICT (book_id, user_id) DO UPDATE SET user_id = EXCLUDED.user_id "
        "RETURNING 1) SELECT * FROM book"
    ),
    CLAIM,
]
LOCK = [
    (
        "WITH user_lock AS (INSERT INTO books_bookuser (book_id, user_id) SELECT c.book_id, %(user)s FROM books_code c "
        "JOIN books_couponbook b ON b.id = c.book_id WHERE c.tenant_id = %(tenant)s AND c.code = %(code)s "
        "AND b.max_redemptions_per_user IS NOT NULL ON CONFLICT (book_id, user_id) DO UPDATE SET user_id = EXCLUDED.user_id "
        "RETURNING 1) SELECT c.*, b.* FROM books_code c JOIN books_couponbook b ON b.id = c.book_id "
        "WHERE c.tenant_id = %(tenant)s AND c.code = %(code)s AND (SELECT count(*) FROM user_lock) >= 0 "
        "FOR NO KEY UPDATE OF c"
    ),
    (
        "WITH reservation AS (INSERT INTO books_reservation (tenant_id, book_id, code_id, user_id, token, status, "
        "created_at, expires_at, ended_at) VALUES (%(tenant)s, %(book)s, %(code_id)s, %(user)s, %(token)s, 'active', now(), "
        "%(expires)s, NULL) RETURNING id), "
        "counted AS (UPDATE books_code SET held = held + 1 WHERE id = %(code_id)s RETURNING 1), "
        + _event_and_outbox(
            code="%(code_id)s",
            reservation="reservation.id",
            kind="locked",
            webhook="code.locked",
            data="'{}'",
            source="reservation",
        )
        + " SELECT reservation.id, (SELECT array_agg(id) FROM outbox), "
        + _USE_COUNTS
        + " FROM reservation"
    ),
]
REDEEM = [
    (
        "SELECT c.*, b.*, r.* FROM books_code c JOIN books_couponbook b ON b.id = c.book_id LEFT JOIN books_reservation r "
        "ON r.code_id = c.id AND r.token = %(token)s AND r.user_id = %(user)s WHERE c.tenant_id = %(tenant)s "
        "AND c.code = %(code)s FOR NO KEY UPDATE OF c"
    ),
    (
        "WITH consumed AS (UPDATE books_reservation SET status = 'consumed', ended_at = now() "
        "WHERE id = %(reservation_id)s AND status = 'active' RETURNING 1), "
        "used AS (UPDATE books_code SET redeemed_count = redeemed_count + 1, state = 'redeemed', held = held - 1 "
        "WHERE id = %(code_id)s "
        "AND (max_uses IS NULL OR redeemed_count < max_uses) AND EXISTS (SELECT FROM consumed) RETURNING id), "
        "redemption AS (INSERT INTO redemptions_redemption (tenant_id, book_id, code_id, reservation_id, user_id, "
        "redeemed_at, order_ref, amount, product_id, discount, currency, actor_type, actor_id, idempotency_key, "
        "reversed_at, reversal_reason, reversed_by_type, reversed_by_id) SELECT %(tenant)s, %(book)s, %(code_id)s, "
        "%(reservation_id)s, %(user)s, now(), '', 10, '', 1, '', 'system', 'bench', '', NULL, '', '', '' FROM used "
        "RETURNING id), "
        + _event_and_outbox(
            code="%(code_id)s",
            reservation="%(reservation_id)s",
            kind="redeemed",
            webhook="code.redeemed",
            data='concat(\'{"redemption": \', to_json(redemption.id), \', "order_ref": ""}\')::jsonb',
            source="redemption",
        )
        + " SELECT (SELECT id FROM redemption), (SELECT count(*) FROM consumed), (SELECT array_agg(id) FROM outbox), "
        "NULL, NULL, NULL"
    ),
]


def _raw_cycle(conn, tenant_id: int, book_id: int, user: str, log: list[str] | None = None) -> None:
    """One assign -> lock -> redeem as raw SQL, on an autocommit connection with explicit BEGIN and COMMIT."""
    values = {"tenant": tenant_id, "book": book_id, "user": user, "start": secrets.randbits(63)}

    def execute(sql: str):
        if log is not None:
            log.append(sql)
        cursor = conn.execute(sql, values if "%(" in sql else None)
        return cursor.fetchone() if cursor.description else None

    def step(statements) -> None:
        for sql in ["BEGIN", *statements, "COMMIT"]:
            row = execute(sql)
            if sql == CLAIM:
                # As the service: from a random point of the shuffle order, wrapping round to its start.
                if row[2] is None:
                    row = execute(CLAIM_WRAPPED)
                values["code_id"], values["code"] = row[2], row[5]
            elif sql.startswith("WITH reservation"):
                values["reservation_id"] = row[0]

    step(ASSIGN)
    values.update(token=secrets.token_urlsafe(24), expires=_in_five_minutes())
    step(LOCK)
    step(REDEEM)


def _raw_worker(tenant_id: int, book_id: int):
    def worker(index: int, cycles: int, barrier) -> None:
        with raw_connection() as conn:
            conn.autocommit = True
            for i in range(WARM_UP_CYCLES):
                _raw_cycle(conn, tenant_id, book_id, f"raw-warm-{index}-{i}")
            barrier.wait()
            for i in range(cycles):
                _raw_cycle(conn, tenant_id, book_id, f"raw-{index}-{i}")

    return worker


def statement_shape(sql: str) -> tuple[str, tuple[str, ...], bool, bool]:
    """What a statement does, whichever way it is spelt: verb, every table it reads or writes (CTEs aside), row
    lock, SKIP LOCKED."""
    words = sql.replace('"', "").replace("(", " ").replace(",", " ").split()
    tables = {
        words[i + 1].split(".")[0]
        for i, word in enumerate(words[:-1])
        if word.upper() in ("FROM", "INTO", "UPDATE", "JOIN") and words[i + 1].startswith(("books_", "redemptions_", "webhooks_"))
    }
    return words[0].upper(), tuple(sorted(tables)), "FOR NO KEY UPDATE" in sql, "SKIP LOCKED" in sql


def _statements_compare(tenant, book) -> int:
    """One cycle each way, recorded: the two statement sequences must match shape for shape. Returns their length."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from books.services.codes import code_assign_random, code_redeem, code_reserve
    from core.actors import Actor

    actor = Actor.system("bench")
    with CaptureQueriesContext(connection) as captured:
        code = code_assign_random(tenant=tenant, book_id=book.pk, user_id="shape-svc", actor=actor)
        reservation = code_reserve(tenant=tenant, code=code.code, user_id="shape-svc", actor=actor)
        code_redeem(
            tenant=tenant,
            code=code.code,
            user_id="shape-svc",
            token=reservation.token,
            actor=actor,
            amount=Decimal("10"),
            currency="EUR",
        )
    service = [statement_shape(query["sql"]) for query in captured.captured_queries]
    raw_log: list[str] = []
    with raw_connection() as conn:
        conn.autocommit = True
        _raw_cycle(conn, tenant.pk, book.pk, "shape-raw", log=raw_log)
    raw = [statement_shape(sql) for sql in raw_log]
    if service != raw:
        raise AssertionError(f"the raw side's statements differ from the services':\nservices {service}\nraw      {raw}")
    return len(service)


def _in_five_minutes():
    from django.utils import timezone

    return timezone.now() + timedelta(minutes=5)


def run() -> Result:
    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tests.factories import CouponBookFactory, TenantFactory

    cycles = scale(4000) // CLIENTS * CLIENTS
    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    codes_generate(book=book, count=2 * (cycles + CLIENTS * WARM_UP_CYCLES) + 2, actor=Actor.system("bench"))
    statements = _statements_compare(tenant, book)
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
            f"both sides issue the same {statements} statements per cycle (BEGIN and COMMIT included), checked shape "
            "for shape (verb, every table read or written, row lock, SKIP LOCKED) on one recorded cycle of each",
            f"client CPU per cycle: services {service_cpu:.1f} ms, raw SQL {raw_cpu:.1f} ms; machine busy "
            f"{service_busy:.0%} and {raw_busy:.0%}; the rest of each cycle's CPU ({cores} cores) is PostgreSQL's "
            f"and the system's: services {cores * service_busy * 1000 / service_rate - service_cpu:.1f} ms, "
            f"raw {cores * raw_busy * 1000 / raw_rate - raw_cpu:.1f} ms",
        ],
    )
