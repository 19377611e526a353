"""What the two checks that kill real processes (scale_check.py, chaos_check.py) share: the project's paths, the
environment of the stack a check starts, the commands of its processes (gunicorn, Celery worker and beat), the set-up
of its database, and one API call recorded as an Answer (never raising: a timeout or a refused connection is status 0).
"""

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
BIN = ROOT / ".venv" / "bin"
# Every request of a check has this timeout (seconds): a hang is a failure, not a wait.
TIMEOUT = 10
# The time to live of the reservations the checks' traffic takes (seconds); beat marks them expired after it.
LOCK_TTL = 10


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def stack_env(**values: str) -> dict[str, str]:
    """The environment of a check's processes: production mode (DEBUG off, a random key) over plain HTTP on the
    loopback, beat's expiry task every 5 s, and throttling left on with rates far above what the clients send
    (throttling is not what the checks measure). `values` add to it (the servers' URLs, shorter job leases)."""
    return {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(48),
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on 127.0.0.1
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "COUPONS_EXPIRY_INTERVAL": "5",
        "DB_CONN_MAX_AGE": "60",
        "API_RATE_AUTH": "100000/min",
        "API_RATE_AUTH_ADDRESS": "100000/min",
        "API_RATE_READ": "1000000/min",
        "API_RATE_WRITE": "1000000/min",
        "API_RATE_LOOKUP_FAILED": "1000000/min",
        "API_RATE_LOOKUP_FAILED_CLIENT": "1000000/min",
        "PYTHONUNBUFFERED": "1",
        **values,
    }


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def database_prepare(server_url: str, db_name: str, env: dict[str, str], *, tenant: str, title: str) -> dict:
    """The check's database on its private PostgreSQL (`server_url`, no database), migrated, with one tenant and an
    API client; returns the client's credentials ({"client_id", "client_secret", ...})."""
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db_name}")
    manage(env, "migrate", "--noinput")
    manage(env, "create_tenant", tenant, "--name", title, "--timezone", "UTC")
    return json.loads(manage(env, "create_api_client", tenant, f"{tenant}-check", "--json"))


def gunicorn_command(port: int, *extra: str) -> list[str]:
    """The production configuration (coupons_site/gunicorn_conf.py: gthread workers, keep-alive) on a free port,
    with fewer processes than a server's default, as the checks share two cores with their load."""
    return [
        str(BIN / "gunicorn"),
        "-c",
        "python:coupons_site.gunicorn_conf",
        "coupons_site.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "3",
        "--timeout",
        "30",
        *extra,
    ]


def worker_command(name: str, *extra: str) -> list[str]:
    return [
        str(BIN / "celery"),
        "-A",
        "coupons_site",
        "worker",
        "-n",
        f"{name}@%h",
        "--concurrency",
        "1",
        *extra,
        "--loglevel",
        "INFO",
    ]


def beat_command(schedule: Path) -> list[str]:
    return [str(BIN / "celery"), "-A", "coupons_site", "beat", "--loglevel", "INFO", "--schedule", str(schedule)]


def web_wait(port: int, seconds: float = 60) -> bool:
    """True once /healthz on `port` answers, False after `seconds` without an answer."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return True
        except Exception:  # not up yet
            time.sleep(0.5)
    return False


@dataclass
class Answer:
    at: float
    port: int
    endpoint: str
    status: int  # 0 = no answer within the timeout, or the connection failed
    body: object
    seconds: float


def api_call(
    port: int, method: str, path: str, endpoint: str, *, token: str = "", payload: object = None, timeout: float = TIMEOUT
) -> Answer:
    """One JSON request to the instance on `port`; `endpoint` labels it in the summaries."""
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    started = time.time()
    status, raw = 0, b""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except Exception:  # a timeout or refused connection is recorded as status 0
        pass
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return Answer(started, port, endpoint, status, body, time.time() - started)


def is_json_error(body: object) -> bool:
    """The service's error shape: {"error": {"code", ...}} (a 503 of a lost dependency must have it)."""
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]


def by_endpoint(answers: list[Answer]) -> dict[str, dict[int, int]]:
    """Answers counted per endpoint label and status."""
    counts: dict[str, dict[int, int]] = {}
    for answer in answers:
        counts.setdefault(answer.endpoint, {}).setdefault(answer.status, 0)
        counts[answer.endpoint][answer.status] += 1
    return counts
