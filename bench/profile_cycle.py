"""Profile one client's assign -> lock -> redeem cycle through the services with pyinstrument, and split its time
between waiting on PostgreSQL and running Python: `python -m bench.profile_cycle [cycles]`. Then the hot
benchmark's call (a redeem without a token of one shared code) on its own: its wall time and client CPU per call.

The figures explain the cycle benchmark's ratio (README "Performance"): on a machine whose two cores run both
the clients and PostgreSQL, throughput follows the CPU each cycle costs, and the ORM's is the difference.
"""

import sys
import time

from .bench_cycle import service_cycle
from .bench_hot_redeem import _service_attempt, _shared_code
from .common import django_setup, tables_truncate


def main(cycles: int) -> None:
    django_setup()
    from django.db import connection
    from pyinstrument import Profiler

    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tests.factories import CouponBookFactory, TenantFactory

    actor = Actor.system("profile")
    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    codes_generate(book=book, count=cycles * 4 + 50, actor=actor)
    statements = {"n": 0, "seconds": 0.0}

    def count_statements(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements["n"] += 1
            statements["seconds"] += time.perf_counter() - started

    def cycle(i: int) -> None:
        service_cycle(tenant=tenant, book=book, user_id=f"profile-{i}", actor=actor)

    for i in range(20):  # warm up: connection, prepared statements, caches
        cycle(-i - 1)
    # First without the profiler (its sampling costs CPU too): wall time and client CPU per cycle.
    with connection.execute_wrapper(count_statements):
        started = time.perf_counter(), time.process_time()
        for i in range(cycles):
            cycle(i)
        wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
    profiler = Profiler(interval=0.001)
    profiler.start()
    for i in range(cycles, 2 * cycles):
        cycle(i)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))

    # The raw baseline of bench_cycle, one client: its Python CPU per cycle, for comparison.
    import threading

    from .bench_cycle import _raw_worker

    raw_started = time.perf_counter(), time.process_time()
    _raw_worker(tenant.pk, book.pk)(0, cycles, threading.Barrier(1))
    raw_wall, raw_cpu = time.perf_counter() - raw_started[0], time.process_time() - raw_started[1]
    per = 1000 / cycles
    print(
        f"services: {wall * per:.2f} ms wall and {cpu * per:.2f} ms client CPU per cycle, {statements['n'] / cycles:.1f} statements besides BEGIN and COMMIT"
    )
    print(f"raw SQL:  {raw_wall * per:.2f} ms wall and {raw_cpu * per:.2f} ms client CPU per cycle")

    hot_tenant, _ = _shared_code(cycles * 2 + 20, "PROFILEHOT")
    redeem = _service_attempt(hot_tenant, "profilehot")
    for i in range(20):  # warm up
        redeem(0, -i - 1)
    hot_started = time.perf_counter(), time.process_time()
    for i in range(cycles):
        redeem(0, i)
    hot_wall, hot_cpu = time.perf_counter() - hot_started[0], time.process_time() - hot_started[1]
    print(f"hot redeem (no token, one shared code): {hot_wall * per:.2f} ms wall and {hot_cpu * per:.2f} ms client CPU per call")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
