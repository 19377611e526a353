"""Shared set-up for the benchmarks: a dedicated PostgreSQL database, clean tables, timing and the results table."""

import os
import secrets
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coupons_bench"


def scale(n: int) -> int:
    """Row counts scaled by BENCH_SCALE (1.0 = the SPEC's sizes); a quick smoke run uses e.g. 0.01."""
    return max(1, int(n * float(os.environ.get("BENCH_SCALE", "1"))))


def django_setup() -> None:
    """Point Django at the benchmark database (created when missing) and migrate it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coupons_site.settings")
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("DJANGO_DEBUG", "false")  # DEBUG records every query: not how production runs
    # Production settings refuse the published development key; plain HTTP on 127.0.0.1 (no HTTPS redirect).
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + secrets.token_urlsafe(48))
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
    import dj_database_url
    import psycopg

    params = dj_database_url.parse(os.environ["DATABASE_URL"])
    if "postgresql" not in params["ENGINE"]:
        raise SystemExit("The benchmarks run on PostgreSQL: set DATABASE_URL to a postgres:// URL.")
    admin_dsn = f"host={params['HOST'] or '127.0.0.1'} port={params['PORT'] or 5432} user={params['USER']} dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [params["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{params["NAME"]}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def tables_truncate() -> None:
    """Empty every domain table, so each benchmark starts from the same state (tenants included)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            # Webhook deliveries are named: they keep plain parent ids, so no foreign key cascades the truncation to them.
            "TRUNCATE redemptions_redemption, books_event, books_reservation, books_bookuser, books_code, "
            "webhooks_webhookattempt, webhooks_webhookdelivery, "
            "core_job, books_couponbook, tenants_apiclient, tenants_staffmembership, tenants_tenant RESTART IDENTITY CASCADE"
        )
        # No ANALYZE of the emptied tables: statistics that say "empty" make the planner choose sequential scans,
        # and a prepared statement keeps the plan it made then while the table grows (with autovacuum off, as on
        # this project's machine, nothing re-plans it: the full-scale hot redeem fell to 137/s). TRUNCATE leaves
        # them "never analyzed", as a new deployment's tables are, and the planner assumes a size.


def raw_connection():
    """A psycopg 3 connection of its own, outside Django: the raw baselines run on it."""
    import psycopg
    from django.db import connection

    return psycopg.connect(**connection.get_connection_params())


@contextmanager
def timed(box: dict, key: str):
    start = time.perf_counter()
    yield
    box[key] = time.perf_counter() - start


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Result:
    name: str
    figure: str  # what was measured, with its unit
    baseline: str = ""  # the raw baseline, with its unit
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        verdict = {True: "met", False: "MISSED", None: "-"}[self.ok]
        return f"| {self.name} | {self.figure} | {self.baseline} | {ratio} | {self.target} | {verdict} |"


def table(results: list[Result]) -> str:
    lines = [
        "| benchmark | measured | raw baseline | ratio | target | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
        *(r.row() for r in results),
    ]
    notes = [f"- {r.name}: {note}" for r in results for note in r.notes]
    return "\n".join(lines + ([""] + notes if notes else []))


def _redeemer(tenant_id: int, codes: list[str], barrier, warm_up) -> None:
    from decimal import Decimal

    from books.services.codes import code_redeem
    from core.actors import Actor
    from tenants.models import Tenant

    tenant, actor = Tenant.objects.get(pk=tenant_id), Actor.system("bench")
    if warm_up is not None:
        warm_up()
    barrier.wait()
    for value in codes:
        code_redeem(tenant=tenant, code=value, user_id=f"bench-{value}", actor=actor, amount=Decimal("10"), currency="EUR")


def distinct_codes_redeem_rate(*, book, count: int, label: str, clients: int, warm_up=None) -> float:
    """Redemptions per second of `count` fresh codes uploaded into `book`, each redeemed once without a token by
    `clients` forked processes (one database connection each, as gunicorn workers would be).

    `warm_up`, when given, runs in each client before the timed part (what a long-running web process has done
    already). Used by the benchmarks that compare two books or two modes on the same work (campaign, webhooks).
    """
    import multiprocessing

    from django.db import connections

    from books.services.code_creation import codes_upload
    from core.actors import Actor

    values = [f"{label}-{n:07d}" for n in range(count)]
    codes_upload(book=book, codes=values, actor=Actor.system("bench"))
    connections.close_all()  # a forked child must never share its parent's socket
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients + 1)
    processes = [
        context.Process(target=_redeemer, args=(book.tenant_id, values[i::clients], barrier, warm_up)) for i in range(clients)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    start = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - start
    if any(process.exitcode for process in processes):
        raise RuntimeError("a benchmark client failed")
    return count / elapsed
