"""Shared fixtures: the session's database server, tenants, actors and books."""

import os
from pathlib import Path

import pytest

from core.actors import Actor
from coupons_site import embedded_db
from tests.factories import CouponBookFactory, TenantFactory

# On CI a skipped test fails the run unless it is allow-listed (pytest_skip_policy.py, .ci/allowed_skips.txt).
pytest_plugins = ["pytest_skip_policy"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Without DATABASE_URL the session runs on a throw-away embedded PostgreSQL of its own, started only when a
    test first needs the database; pytest-django then creates the test database on it. With DATABASE_URL, that
    server is used, as everywhere."""
    if os.environ.get("DATABASE_URL"):
        yield
        return
    from django.conf import settings

    with embedded_db.throwaway_server(Path(settings.VAR_DIR) / "pytest-pg") as socket_dir:
        settings.DATABASES["default"]["HOST"] = str(socket_dir)
        yield


@pytest.fixture
def tenant(db):
    return TenantFactory()


@pytest.fixture
def other_tenant(db):
    return TenantFactory()


@pytest.fixture
def actor():
    return Actor.system("test")


@pytest.fixture
def book(tenant):
    return CouponBookFactory(tenant=tenant)


# --- Lost dependencies (issue 9): a cache or broker that refuses connections, without stopping a real server ----


@pytest.fixture
def dead_redis_url():
    """A redis:// URL on a loopback port nothing listens on: every connection is refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def cache_unreachable(settings, dead_redis_url):
    """The shared cache is Redis, and Redis is down."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead_redis_url}}


@pytest.fixture
def broker_unreachable(dead_redis_url):
    """Celery publishes to a Redis broker that is down (tasks are not run eagerly)."""
    from coupons_site.celery import app

    def reset_pools():
        # Celery caches its connection and producer pools for the broker URL; it drops them the same way
        # after a fork (Celery._after_fork).
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None

    # The write URL: the CELERY_BROKER_URL environment variable (set in CI) would override broker_url itself.
    # Saved raw: the property falls back to broker_url, and restoring that value would pin the write URL to it.
    saved = (app.conf.get("broker_write_url"), app.conf.task_always_eager)
    app.conf.broker_write_url, app.conf.task_always_eager = dead_redis_url, False
    reset_pools()
    yield
    app.conf.broker_write_url, app.conf.task_always_eager = saved
    reset_pools()


# --- Celery through Redis: the Redis of CELERY_BROKER_URL (CI), else a private redis-server of the run ---------


@pytest.fixture(scope="session")
def redis_broker_url(tmp_path_factory):
    """CELERY_BROKER_URL when it is Redis; otherwise a private redis-server for this run (no disk writes), so the
    tests that run a real Celery worker run on a contributor's machine too."""
    import shutil
    import socket
    import subprocess
    import time

    import redis
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        yield settings.CELERY_BROKER_URL
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("These tests run a Celery worker through Redis: install it with apt-get install -y redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def celery_broker_use():
    """use(app, url, transport_options): point the project's Celery app at another broker. _after_fork is Celery's
    own way to drop the app's connection pools (as after a fork); the next publish connects to the new URL."""

    def use(app, url: str, transport_options: dict) -> None:
        app.conf.broker_url = url
        app.conf.broker_transport_options = transport_options
        app._after_fork()

    return use


@pytest.fixture
def redis_worker(redis_broker_url, celery_broker_use):
    """A Celery worker of the project app, consuming from the Redis broker, in a thread of this process (tests that
    need the jobs run as production runs them: the books' tasks, the browser test's distribution)."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connection

    from coupons_site.celery import app

    configured = (app.conf.broker_url, app.conf.broker_transport_options)

    def close_worker_connection(**kwargs):
        # Runs in the worker's thread after each task: that thread's connection must not outlive the test, or
        # the test database cannot be dropped.
        connection.close()

    task_postrun.connect(close_worker_connection, weak=False)
    celery_broker_use(app, redis_broker_url, {})
    try:
        app.control.purge()  # leftovers of an interrupted earlier run must not reach this worker
        with start_worker(app, perform_ping_check=False, shutdown_timeout=30):
            yield app
    finally:
        task_postrun.disconnect(close_worker_connection)
        celery_broker_use(app, *configured)
