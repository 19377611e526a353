"""Shared fixtures: the session's database server, tenants, actors and books."""

import os
from pathlib import Path

import pytest

from books.factories import CouponBookFactory, TenantFactory
from core.actors import Actor
from coupons_site import embedded_db


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
