"""Helpers shared by the apps' tests: staff users of each role, logged in, a redemption row, and the error a
deadlock's victim gets."""

from decimal import Decimal

from django.db import OperationalError
from django.utils import timezone
from psycopg import errors

from tenants.services import staff_user_create
from tests.factories import CodeFactory, RedemptionFactory

PASSWORD = "Back-office-pass-1"


def staff_user(tenant, role: str, username: str | None = None):
    return staff_user_create(tenant=tenant, username=username or f"{role}-{tenant.slug}", password=PASSWORD, role=role)


def logged_in(client, tenant, role: str):
    client.force_login(staff_user(tenant, role))
    return client


def redemption_make(book, *, user_id="user-1", discount="5.00", when=None, code=None, **fields):
    code = code or CodeFactory(book=book, tenant=book.tenant, state="redeemed", user_id=user_id, redeemed_count=1)
    return RedemptionFactory(
        code=code,
        book=book,
        tenant=book.tenant,
        user_id=user_id,
        discount=Decimal(discount),
        amount=Decimal("50.00"),
        redeemed_at=when or timezone.now(),
        **fields,
    )


def deadlock() -> OperationalError:
    """The error Django raises for PostgreSQL's 40P01 (a deadlock's victim), with psycopg's as its cause."""
    try:
        try:
            raise errors.DeadlockDetected("deadlock detected")
        except errors.DeadlockDetected as cause:
            raise OperationalError("deadlock detected") from cause
    except OperationalError as exc:
        return exc
