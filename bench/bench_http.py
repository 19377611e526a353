"""Benchmark 3b: the assign -> lock -> redeem cycle over HTTP against gunicorn (real JWT, throttles in Redis, an
Idempotency-Key on every POST), 16 concurrent clients, against the raw-SQL cycle of bench_cycle measured in the same
run on the same database (16 client processes issuing the services' statements).

SPEC's targets, each with its own row: the HTTP cycle reaches at least 0.5 of the raw-SQL cycle; the web processes'
CPU per cycle is at most 8 ms (read from /proc for the gunicorn master and its workers); at most 12 SQL statements
per cycle counting BEGIN/COMMIT, and an Idempotency-Key adds at most 2 per call (counted on one cycle through the
same WSGI application in this process, with and without keys). The load generator's own CPU per cycle is printed,
so a run where it was the bottleneck can be told apart; p50/p99 per endpoint and of /healthz are in the notes.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .common import Result, median, percentile, scale, tables_truncate

PORT = 8201
CLIENTS = 16
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "4"))
ROOT = Path(__file__).resolve().parent.parent


WEB_CPU_MS_TARGET = 8.0
STATEMENTS_TARGET = 12
STATEMENTS_PER_KEY = 2
CALLS_PER_CYCLE = 3


def _request(
    method: str, path: str, token: str | None = None, payload: dict | None = None, key: str | None = None
) -> tuple[int, dict | None, float]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}",
        data=json.dumps(payload).encode() if payload is not None else None,
        method=method,
        headers=headers,
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, (json.loads(raw) if raw else None), time.perf_counter() - started


def _gunicorn() -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-http-" + os.urandom(32).hex(),
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on 127.0.0.1
        # Throttle counters and the like in Redis, as in production (the local default is a file cache).
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10"),
        "API_RATE_AUTH": "1000000/min",
        "API_RATE_READ": "100000000/min",
        "API_RATE_WRITE": "100000000/min",
        "API_RATE_LOOKUP_FAILED": "100000000/min",
        "API_RATE_LOOKUP_FAILED_CLIENT": "100000000/min",
        "API_RATE_AUTH_ADDRESS": "1000000/min",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "coupons_site.wsgi",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(WORKERS),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2)
            return process
        except Exception:  # not up yet
            time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("gunicorn did not start")


def _drive(work, per_client: int) -> tuple[float, dict[str, list[float]]]:
    latencies: dict[str, list[float]] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def record(endpoint: str, seconds: float) -> None:
        with lock:
            latencies.setdefault(endpoint, []).append(seconds)

    def body(index: int) -> None:
        try:
            for i in range(per_client):
                work(index, i, record)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start, latencies


def _process_tree_cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its direct children (gunicorn's master and workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # gone meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _statements_per_cycle(book, token: str, *, with_keys: bool) -> int:
    """SQL statements (BEGIN/COMMIT included) of one cycle through the WSGI application gunicorn serves."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    user = f"count-{with_keys}"

    def post(path: str, body: dict, step: str):
        extra = {"HTTP_IDEMPOTENCY_KEY": f"{user}-{step}"} if with_keys else {}
        response = client.post(path, json.dumps(body), content_type="application/json", **extra)
        assert response.status_code == 201, (path, response.status_code, response.content[:300])
        return response.json()

    with CaptureQueriesContext(connection) as captured:
        code = post(f"/api/v1/books/{book.pk}/assign/", {"user_id": user}, "assign")["code"]
        lock = post(f"/api/v1/codes/{code}/lock/", {"user_id": user}, "lock")
        post(
            f"/api/v1/codes/{code}/redeem/",
            {"user_id": user, "token": lock["token"], "amount": "25.00", "currency": "EUR"},
            "redeem",
        )
    return len(captured.captured_queries)


def run() -> list[Result]:
    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tenants.services import api_client_create
    from tests.factories import CouponBookFactory, TenantFactory

    from .bench_cycle import CLIENTS as RAW_CLIENTS
    from .bench_cycle import _raw_worker, _run_clients

    cycles = scale(3200) // CLIENTS * CLIENTS
    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    codes_generate(book=book, count=2 * cycles + 100, actor=Actor.system("bench"))
    issued = api_client_create(tenant=tenant, name="bench")
    raw_cycles = cycles // RAW_CLIENTS * RAW_CLIENTS
    raw_seconds, _, _ = _run_clients(_raw_worker(tenant.pk, book.pk), raw_cycles)
    raw_rate = raw_cycles / raw_seconds
    from django.db import connections

    connections.close_all()
    server = _gunicorn()
    try:
        status, body, _ = _request(
            "POST", "/api/v1/auth/token/", payload={"client_id": issued.client.client_id, "client_secret": issued.secret}
        )
        assert status == 200, (status, body)
        token = body["access"]
        statements = _statements_per_cycle(book, token, with_keys=False)
        statements_keyed = _statements_per_cycle(book, token, with_keys=True)
        connections.close_all()

        def health(index, i, record):
            status, _, seconds = _request("GET", "/healthz")
            assert status == 200
            record("GET /healthz", seconds)

        def cycle(index, i, record):
            user = f"http-{index}-{i}"
            status, code, seconds = _request(
                "POST", f"/api/v1/books/{book.pk}/assign/", token, {"user_id": user}, key=f"{user}-assign"
            )
            assert status == 201, (status, code)
            record("POST /books/{id}/assign/", seconds)
            value = code["code"]
            status, lock, seconds = _request("POST", f"/api/v1/codes/{value}/lock/", token, {"user_id": user}, key=f"{user}-lock")
            assert status == 201, (status, lock)
            record("POST /codes/{code}/lock/", seconds)
            status, body, seconds = _request(
                "POST",
                f"/api/v1/codes/{value}/redeem/",
                token,
                {"user_id": user, "token": lock["token"], "amount": "25.00", "currency": "EUR"},
                key=f"{user}-redeem",
            )
            assert status == 201, (status, body)
            record("POST /codes/{code}/redeem/", seconds)

        health_seconds, health_latencies = _drive(health, cycles // CLIENTS)
        web_before, load_before = _process_tree_cpu_seconds(server.pid), os.times()
        cycle_seconds, latencies = _drive(cycle, cycles // CLIENTS)
        web_after, load_after = _process_tree_cpu_seconds(server.pid), os.times()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    cycle_rate = cycles / cycle_seconds
    web_cpu_ms = (web_after - web_before) / cycles * 1000
    load_cpu_ms = (load_after.user + load_after.system - load_before.user - load_before.system) / cycles * 1000
    keyed_limit = STATEMENTS_TARGET + STATEMENTS_PER_KEY * CALLS_PER_CYCLE
    ratio = cycle_rate / raw_rate
    notes = [
        f"load generator CPU per cycle {load_cpu_ms:.1f} ms; /healthz on the same stack {cycles / health_seconds:,.0f} req/s",
        *(
            f"{endpoint}: p50 {median(values) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms"
            for endpoint, values in sorted((latencies | health_latencies).items())
        ),
    ]
    return [
        Result(
            name=f"HTTP cycle, {CLIENTS} clients, gunicorn x{WORKERS}, Idempotency-Key on every POST",
            figure=f"{cycle_rate:,.0f} cycles/s ({3 * cycle_rate:,.0f} req/s)",
            baseline=f"raw-SQL cycle ({RAW_CLIENTS} clients) {raw_rate:,.0f} cycles/s",
            ratio=ratio,
            target=">= 0.5 of the raw-SQL cycle",
            ok=ratio >= 0.5,
            notes=notes,
        ),
        Result(
            name="HTTP cycle: web processes' CPU per cycle",
            figure=f"{web_cpu_ms:.1f} ms",
            target=f"<= {WEB_CPU_MS_TARGET:.0f} ms",
            ok=web_cpu_ms <= WEB_CPU_MS_TARGET,
        ),
        Result(
            name="HTTP cycle: SQL statements per cycle, no Idempotency-Key",
            figure=f"{statements}",
            target=f"<= {STATEMENTS_TARGET} (BEGIN/COMMIT counted)",
            ok=statements <= STATEMENTS_TARGET,
        ),
        Result(
            name=f"HTTP cycle: SQL statements per cycle, an Idempotency-Key on each of the {CALLS_PER_CYCLE} calls",
            figure=f"{statements_keyed}",
            target=f"<= {keyed_limit} (+{STATEMENTS_PER_KEY} per call)",
            ok=statements_keyed <= keyed_limit,
        ),
    ]
