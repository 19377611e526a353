"""Shared fixtures: tenants, actors, books and the PostgreSQL-only marker for concurrency tests."""

import pytest
from django.db import connection

from books.factories import CouponBookFactory, TenantFactory
from core.actors import Actor

# On CI a skipped test fails the run unless it is allow-listed (pytest_skip_policy.py, .ci/allowed_skips.txt).
pytest_plugins = ["pytest_skip_policy"]


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need real row locks; on SQLite they are skipped (CI always runs PostgreSQL)."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (CI does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture
def is_postgres():
    return connection.vendor == "postgresql"
