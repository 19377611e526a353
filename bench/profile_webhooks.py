"""Where the redeem path's time goes with two webhook endpoints: `python -m bench.profile_webhooks [codes] [mode ...]`.

Throughput on this shared 2-core machine follows the CPU each redemption costs (the clients, their PostgreSQL
backends and the broker share the two cores), and CPU seconds are far steadier than wall-clock rates while other
work loads the machine. So each mode runs bench_webhooks' workload (CLIENTS forked processes redeeming distinct
codes through the services) and reports, per redemption: the clients' CPU (every thread), their PostgreSQL
backends' CPU (read from /proc: run it on the database's machine, as a user that may read it), and the wall time.
Modes: `none` (endpoints inactive), `two` (two active endpoints, as shipped), `two-nowake` (rows written, the
after-commit wake-up skipped). `--profile` adds a pyinstrument profile of one client of each mode.
"""

import collections
import multiprocessing
import os
import sys
import threading
import time
from decimal import Decimal

from .bench_webhooks import CLIENTS
from .common import django_setup, tables_truncate

MODES = ("none", "two", "two-nowake")


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(tenant_id: int, codes: list[str], mode: str, profile: bool, barrier, results) -> None:
    import django

    django.setup()
    from django.db import connection

    from books.services.codes import code_redeem
    from core.actors import Actor
    from tenants.models import Tenant
    from webhooks import wakeups

    if mode == "two-nowake":
        wakeups.wake = lambda delivery_ids: None
    tenant = Tenant.objects.get(pk=tenant_id)
    actor = Actor.system("profile")
    wakeups.publish([])  # as bench_webhooks: the broker connection open, as in a long-running web process
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
    barrier.wait()
    started_backend, started_self = _proc_cpu(backend), time.process_time()
    if profiler:
        profiler.start()
    for n, value in enumerate(codes):
        code_redeem(tenant=tenant, code=value, user_id=f"profile-{value}-{n}", actor=actor, amount=Decimal("10"), currency="EUR")
    if profiler:
        profiler.stop()
    time.sleep(wakeups.LINGER_SECONDS * 2)  # the last wake-up published: its CPU counts
    results.put((time.process_time() - started_self, _proc_cpu(backend) - started_backend))
    if profiler:
        with open(f"/tmp/profile_webhooks_{mode}.txt", "w") as out:
            out.write(profiler.output_text(unicode=False, color=False, show_all=False))


def _round(tenant, count: int, mode: str, label: str, profile: bool) -> dict[str, float]:
    from django.db import connections

    from books.services.code_creation import codes_upload
    from core.actors import Actor
    from tests.factories import CouponBookFactory
    from webhooks.models import WebhookEndpoint

    WebhookEndpoint.objects.filter(tenant=tenant).update(is_active=mode != "none")
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, max_redemptions_per_user=None, max_codes_per_user=None)
    values = [f"{label}-{n:07d}" for n in range(count)]
    codes_upload(book=book, codes=values, actor=Actor.system("profile"))
    connections.close_all()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(CLIENTS + 1), context.Queue()
    processes = [
        context.Process(target=_client, args=(tenant.pk, values[i::CLIENTS], mode, profile and i == 0, barrier, results))
        for i in range(CLIENTS)
    ]
    for process in processes:
        process.start()
    waits: collections.Counter = collections.Counter()
    sampling = threading.Event()
    sampler = threading.Thread(target=_waits_sample, args=(waits, sampling))
    sampler.start()
    barrier.wait()
    started, load = time.perf_counter(), os.getloadavg()[0]
    for process in processes:
        process.join()
    wall = time.perf_counter() - started
    sampling.set()
    sampler.join()
    if any(process.exitcode for process in processes):
        raise RuntimeError("a profile client failed")
    client = backend = 0.0
    for _ in range(CLIENTS):
        own, theirs = results.get()
        client, backend = client + own, backend + theirs
    per = 1000 / count
    return {
        "client": client * per,
        "backend": backend * per,
        "wall": wall * per,
        "rate": count / wall,
        "load": load,
        "waits": waits,
    }


def _waits_sample(waits, done) -> None:
    """What the clients' backends are doing, sampled every 5 ms from pg_stat_activity (waits and statements)."""
    from .common import raw_connection

    with raw_connection() as conn:
        conn.autocommit = True
        while not done.is_set():
            rows = conn.execute(
                "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(regexp_replace(query, '\\s+', ' ', 'g'), 60) "
                "FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
            ).fetchall()
            waits["(samples)"] += 1
            for wait, query in rows:
                waits[(wait, query)] += 1
            time.sleep(0.005)


def main(argv: list[str]) -> None:
    profile = "--profile" in argv
    argv = [arg for arg in argv if arg != "--profile"]
    count = int(argv[0]) if argv and argv[0].isdigit() else 1000
    modes = [arg for arg in argv if arg in MODES] or list(MODES)
    django_setup()
    from coupons_site.celery import app
    from tests.factories import TenantFactory
    from webhooks.models import EVENT_TYPES
    from webhooks.services import webhook_endpoint_create

    tables_truncate()
    tenant = TenantFactory()
    for n in (1, 2):
        webhook_endpoint_create(tenant=tenant, url=f"https://receiver-{n}.example.invalid/hooks", events=list(EVENT_TYPES))
    print(f"{CLIENTS} clients, {count} redemptions per round; per redemption: client CPU, backend CPU, wall (ms)")
    try:
        for round_ in range(2):
            for mode in modes:
                figures = _round(tenant, count, mode, f"P{round_}{mode}", profile and round_ == 1)
                print(
                    f"{mode:>11}: client {figures['client']:.2f}  backend {figures['backend']:.2f}  "
                    f"sum {figures['client'] + figures['backend']:.2f}  wall {figures['wall']:.2f} "
                    f"({figures['rate']:.0f}/s, load {figures['load']:.1f})",
                    flush=True,
                )
                samples = figures["waits"].pop("(samples)", 1)
                for (wait, query), n in figures["waits"].most_common(12):
                    print(f"             {n / samples:5.2f} {wait:28} {query}")
    finally:
        app.control.purge()


if __name__ == "__main__":
    main(sys.argv[1:])
