"""Benchmark 3b: the assign -> lock -> redeem cycle over HTTP against gunicorn, 16 concurrent clients: requests per
second and p50/p99 per endpoint. The raw baseline is the same stack answering /healthz (gunicorn, Django, one
database round trip): what the framework alone costs per request on this machine."""

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


def _request(method: str, path: str, token: str | None = None, payload: dict | None = None) -> tuple[int, dict | None, float]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}",
        data=json.dumps(payload).encode() if payload is not None else None,
        method=method,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
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


def run() -> list[Result]:
    from books.factories import CouponBookFactory, TenantFactory
    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tenants.services import api_client_create

    cycles = scale(3200) // CLIENTS * CLIENTS
    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    codes_generate(book=book, count=cycles + 100, actor=Actor.system("bench"))
    issued = api_client_create(tenant=tenant, name="bench")
    from django.db import connections

    connections.close_all()
    server = _gunicorn()
    try:
        status, body, _ = _request(
            "POST", "/api/v1/auth/token/", payload={"client_id": issued.client.client_id, "client_secret": issued.secret}
        )
        assert status == 200, (status, body)
        token = body["access"]

        def health(index, i, record):
            status, _, seconds = _request("GET", "/healthz")
            assert status == 200
            record("GET /healthz", seconds)

        def cycle(index, i, record):
            user = f"http-{index}-{i}"
            status, code, seconds = _request("POST", f"/api/v1/books/{book.pk}/assign/", token, {"user_id": user})
            assert status == 201, (status, code)
            record("POST /books/{id}/assign/", seconds)
            value = code["code"]
            status, lock, seconds = _request("POST", f"/api/v1/codes/{value}/lock/", token, {"user_id": user})
            assert status == 201, (status, lock)
            record("POST /codes/{code}/lock/", seconds)
            status, body, seconds = _request(
                "POST", f"/api/v1/codes/{value}/redeem/", token, {"user_id": user, "token": lock["token"], "amount": "25.00"}
            )
            assert status == 201, (status, body)
            record("POST /codes/{code}/redeem/", seconds)

        health_seconds, health_latencies = _drive(health, cycles // CLIENTS)
        cycle_seconds, latencies = _drive(cycle, cycles // CLIENTS)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    health_rps = cycles / health_seconds
    cycle_rps = 3 * cycles / cycle_seconds
    results = [
        Result(
            name=f"HTTP cycle, {CLIENTS} clients, gunicorn x{WORKERS}",
            figure=f"{cycle_rps:,.0f} req/s ({cycles / cycle_seconds:,.0f} cycles/s)",
            baseline=f"/healthz {health_rps:,.0f} req/s",
            ratio=cycle_rps / health_rps,
            target="report",
        )
    ]
    for endpoint, values in sorted((latencies | health_latencies).items()):
        results.append(
            Result(
                name=f"  {endpoint}",
                figure=f"p50 {median(values) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms",
                target="report",
            )
        )
    return results
