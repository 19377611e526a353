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
    saved = (app.conf.broker_write_url, app.conf.task_always_eager)
    app.conf.broker_write_url, app.conf.task_always_eager = dead_redis_url, False
    reset_pools()
    yield
    app.conf.broker_write_url, app.conf.task_always_eager = saved
    reset_pools()
