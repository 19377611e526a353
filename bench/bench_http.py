"""Benchmark 3b: the assign -> lock -> redeem cycle over HTTP against gunicorn (real JWT, throttles in Redis, an
Idempotency-Key on every POST), 16 concurrent clients, against the raw-SQL cycle of bench_cycle measured in the same
run on the same database (16 client processes issuing the services' statements).

gunicorn runs with the production configuration (coupons_site/gunicorn_conf.py: gthread workers, keep-alive);
BENCH_GUNICORN_WORKERS, BENCH_GUNICORN_THREADS and BENCH_GUNICORN_CLASS (e.g. `sync`) change its worker model for a
comparison, never for a verdict of record.

The load comes from wrk (Debian package `wrk`) running bench/http_cycle.lua: 16 connections, one per wrk thread,
each running cycles for users of its own and checking every answer. wrk costs a few tens of microseconds of CPU
per request, where the Python threads it replaces cost 1.6-2 ms per cycle on the two cores the web workers need.
It runs for a fixed time (wrk's way; 30 s at full scale, at least 10 s) after 3 s of warm-up cycles that are not
counted: the rate is the cycles completed in that time.

SPEC's targets, each with its own row: the HTTP cycle reaches at least 0.5 of the raw-SQL cycle; the web processes'
CPU per cycle is at most 8 ms (read from /proc for the gunicorn master and its workers); at most 12 SQL statements
per cycle counting BEGIN/COMMIT, and an Idempotency-Key adds at most 2 per call (counted by Django's query capture
on a warm cycle through the same WSGI application in this process, with and without keys). The load generator's
own CPU per cycle (wrk's rusage) is printed, so a run where it was the bottleneck can be told apart; p50/p99 per
endpoint and /healthz's rate on the same stack are in the notes. BENCH_HTTP_PROFILE=path samples the workers with
py-spy during the cycles (collapsed stacks, README "Performance"), only the thread holding the GIL: where the CPU
goes, not where the threads wait.
"""

import importlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .common import Result, median, percentile, scale, tables_truncate

PORT = 8201
CLIENTS = 16
# The production worker model (coupons_site/gunicorn_conf.py reads WEB_*), unless a comparison asks for another.
WEB_ENVIRONMENT = {
    name: os.environ[bench_name]
    for name, bench_name in (
        ("WEB_WORKERS", "BENCH_GUNICORN_WORKERS"),
        ("WEB_THREADS", "BENCH_GUNICORN_THREADS"),
        ("WEB_WORKER_CLASS", "BENCH_GUNICORN_CLASS"),
    )
    if os.environ.get(bench_name)
}
ROOT = Path(__file__).resolve().parent.parent


LUA_SCRIPT = Path(__file__).resolve().parent / "http_cycle.lua"
ENDPOINTS = {"assign": "POST /books/{id}/assign/", "lock": "POST /codes/{code}/lock/", "redeem": "POST /codes/{code}/redeem/"}

WARM_UP_SECONDS = 3
WEB_CPU_MS_TARGET = 8.0
STATEMENTS_TARGET = 12
STATEMENTS_PER_KEY = 2
CALLS_PER_CYCLE = 3


def _worker_model() -> str:
    """The gunicorn worker model the run uses, as the configuration reads it."""
    saved = {name: os.environ.get(name) for name in WEB_ENVIRONMENT}
    os.environ.update(WEB_ENVIRONMENT)
    try:
        from coupons_site import gunicorn_conf

        config = importlib.reload(gunicorn_conf)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    threads = f" x{config.threads} threads" if config.worker_class == "gthread" else ""
    return f"gunicorn {config.worker_class} x{config.workers}{threads}"


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
        **WEB_ENVIRONMENT,
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--config",
            "python:coupons_site.gunicorn_conf",
            "coupons_site.wsgi",
            "--bind",
            f"127.0.0.1:{PORT}",
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


def _wrk(arguments: list[str], env: dict | None = None, timeout: float = 600) -> tuple[str, float]:
    """Run wrk; its output and the CPU seconds it used (user + system, from this process's children's rusage)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("bench http needs wrk, the HTTP load generator: apt-get install -y wrk")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [binary, *arguments], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return done.stdout, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _cycles_drive(token: str, book_id: int, seconds: float) -> tuple[int, dict[str, list[float]], float]:
    """wrk's cycles for `seconds`: cycles completed, latencies (s) per endpoint, wrk's CPU seconds."""
    output, cpu = _wrk(
        ["-t", str(CLIENTS), "-c", str(CLIENTS), "-d", f"{seconds:.0f}s", "--timeout", "30s", "-s", str(LUA_SCRIPT)]
        + [f"http://127.0.0.1:{PORT}/"],
        env={"BENCH_TOKEN": token, "BENCH_BOOK": str(book_id), "BENCH_RUN": f"wrk{os.getpid()}x{time.time_ns()}"},
        timeout=seconds + 120,
    )
    cycles, errors, first_errors = 0, 0, []
    latencies: dict[str, list[float]] = {}
    for line in output.splitlines():
        parts = line.split(" ", 3)
        if parts[0] != "bench-http" or len(parts) < 3:
            continue
        field, value = parts[2], parts[3] if len(parts) > 3 else ""
        if field == "cycles":
            cycles += int(value)
        elif field == "errors":
            errors += int(value)
        elif field == "first_error" and value.strip():
            first_errors.append(value.strip())
        elif field in ENDPOINTS and value:
            latencies.setdefault(ENDPOINTS[field], []).extend(float(ms) / 1000 for ms in value.split(",") if ms)
    if errors or not cycles:
        raise RuntimeError(f"{errors} failed calls in the HTTP cycle (first: {first_errors[:3]}); wrk said: {output[-1500:]}")
    return cycles, latencies, cpu


def _health_rate(seconds: float) -> float:
    output, _ = _wrk(["-t", "2", "-c", str(CLIENTS), "-d", f"{seconds:.0f}s", f"http://127.0.0.1:{PORT}/healthz"])
    found = re.search(r"Requests/sec:\s*([0-9.]+)", output)
    return float(found.group(1)) if found else float("nan")


def _process_tree_cpu_seconds(root: int) -> tuple[float, float]:
    """User and system CPU of a process and its direct children (gunicorn's master and workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # gone meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            user, system = user + int(fields[11]) / ticks, system + int(fields[12]) / ticks
    return user, system


def _profiler_start(pid: int) -> subprocess.Popen | None:
    """BENCH_HTTP_PROFILE=path: py-spy samples gunicorn's workers during the cycles (collapsed stacks to path)."""
    path = os.environ.get("BENCH_HTTP_PROFILE")
    if not path:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(pid), "--subprocesses", "--rate", "250", "--gil", "--format", "raw"]
    process = subprocess.Popen([*command, "--output", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)  # py-spy attaches to each worker before the load starts
    return process


def _profiler_stop(process: subprocess.Popen | None) -> None:
    if process is not None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def _statements_per_cycle(book, token: str, *, with_keys: bool) -> int:
    """SQL statements (BEGIN/COMMIT included) of one warm cycle through the WSGI application gunicorn serves: a
    first cycle fills this process's credential entry, the second is counted."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def cycle(user: str) -> None:
        def post(path: str, body: dict, step: str):
            extra = {"HTTP_IDEMPOTENCY_KEY": f"{user}-{step}"} if with_keys else {}
            response = client.post(path, json.dumps(body), content_type="application/json", **extra)
            assert response.status_code == 201, (path, response.status_code, response.content[:300])
            return response.json()

        code = post(f"/api/v1/books/{book.pk}/assign/", {"user_id": user}, "assign")["code"]
        lock = post(f"/api/v1/codes/{code}/lock/", {"user_id": user}, "lock")
        body = {"user_id": user, "token": lock["token"], "amount": "25.00", "currency": "EUR"}
        post(f"/api/v1/codes/{code}/redeem/", body, "redeem")

    cycle(f"warm-{with_keys}")
    with CaptureQueriesContext(connection) as captured:
        cycle(f"count-{with_keys}")
    return len(captured.captured_queries)


def run() -> list[Result]:
    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tenants.services import api_client_create
    from tests.factories import CouponBookFactory, TenantFactory

    from .bench_cycle import CLIENTS as RAW_CLIENTS
    from .bench_cycle import WARM_UP_CYCLES, _raw_worker, _run_clients

    seconds = max(10.0, 30 * float(os.environ.get("BENCH_SCALE", "1")))
    raw_cycles = scale(3200) // RAW_CLIENTS * RAW_CLIENTS
    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    codes_generate(book=book, count=raw_cycles + RAW_CLIENTS * WARM_UP_CYCLES + 100, actor=Actor.system("bench"))
    issued = api_client_create(tenant=tenant, name="bench")
    raw_seconds, _, _ = _run_clients(_raw_worker(tenant.pk, book.pk), raw_cycles)
    raw_rate = raw_cycles / raw_seconds
    # Enough free codes for wrk's fixed time even at the raw rate, twice over.
    codes_generate(book=book, count=int(2 * raw_rate * (seconds + WARM_UP_SECONDS)) + 1000, actor=Actor.system("bench"))
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
        health_rate = _health_rate(3)
        # Warm-up, not counted: each worker's first checkout calls import the views, open its database
        # connection and read its credential entry (tens of ms of CPU each, which a long-lived worker pays once).
        _cycles_drive(token, book.pk, WARM_UP_SECONDS)
        profiler = _profiler_start(server.pid)
        web_before = _process_tree_cpu_seconds(server.pid)
        cycles, latencies, load_cpu = _cycles_drive(token, book.pk, seconds)
        web_after = _process_tree_cpu_seconds(server.pid)
        _profiler_stop(profiler)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    cycle_rate = cycles / seconds
    web_user_ms, web_system_ms = ((after - before) / cycles * 1000 for before, after in zip(web_before, web_after, strict=True))
    web_cpu_ms = web_user_ms + web_system_ms
    load_cpu_ms = load_cpu / cycles * 1000
    keyed_limit = STATEMENTS_TARGET + STATEMENTS_PER_KEY * CALLS_PER_CYCLE
    ratio = cycle_rate / raw_rate
    notes = [
        f"{cycles:,} cycles in {seconds:.0f} s; load generator (wrk) CPU per cycle {load_cpu_ms:.2f} ms; "
        f"/healthz on the same stack {health_rate:,.0f} req/s",
        *(
            f"{endpoint}: p50 {median(values) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms"
            for endpoint, values in sorted(latencies.items())
        ),
    ]
    return [
        Result(
            name=f"HTTP cycle, {CLIENTS} clients, {_worker_model()}, Idempotency-Key on every POST",
            figure=f"{cycle_rate:,.0f} cycles/s ({3 * cycle_rate:,.0f} req/s)",
            baseline=f"raw-SQL cycle ({RAW_CLIENTS} clients) {raw_rate:,.0f} cycles/s",
            ratio=ratio,
            target=">= 0.5 of the raw-SQL cycle",
            ok=ratio >= 0.5,
            notes=notes,
        ),
        Result(
            name="HTTP cycle: web processes' CPU per cycle",
            figure=f"{web_cpu_ms:.1f} ms (user {web_user_ms:.1f}, system {web_system_ms:.1f})",
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
