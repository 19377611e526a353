"""The operator commands of the books app: expire_reservations and seed_demo."""

import io
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from books.demo import (
    LIMITED_BOOK,
    LIMITED_BUDGET,
    LIMITED_LOCKED,
    LIMITED_MAX_REDEMPTIONS,
    LIMITED_REDEEMED,
    SHARED_BOOK,
    SHARED_CODE,
    STAFF_USERS,
    SUPERUSER,
)
from books.models import BookCounter, Code, CouponBook, Event, Reservation
from redemptions.models import Redemption
from tenants.models import StaffMembership, Tenant
from tenants.services import api_client_authenticate
from tests.factories import ReservationFactory

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


# --- expire_reservations ------------------------------------------------------------------------------------


def test_expire_reservations_marks_the_expired_ones_once(book):
    past = ReservationFactory(code__book=book, expires_at=timezone.now() - timedelta(seconds=5))
    current = ReservationFactory(code__book=book, user_id="user-2")

    first = run("expire_reservations")
    second = run("expire_reservations")

    assert "Marked 1 expired reservation(s)." in first
    assert "Marked 0 expired reservation(s)." in second
    past.refresh_from_db()
    current.refresh_from_db()
    assert past.status == Reservation.Status.EXPIRED
    assert current.status == Reservation.Status.ACTIVE
    assert list(Event.objects.filter(kind=Event.Kind.LOCK_EXPIRED).values_list("reservation", flat=True)) == [past.pk]


def test_expire_reservations_with_nothing_to_do(db):
    assert run("expire_reservations").strip() == "Marked 0 expired reservation(s)."


# --- seed_demo ----------------------------------------------------------------------------------------------


def row_counts() -> dict[str, int]:
    """Rows of every table of the project (users, groups and permissions included)."""
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


@pytest.fixture
def debug_on(settings):
    settings.DEBUG = True  # pytest-django turns DEBUG off; make run serves with it on


def test_seed_demo_loads_the_demo_through_the_services(debug_on):
    output = run("seed_demo")

    tenant = Tenant.objects.get(slug="demo")
    assert tenant.timezone == "Europe/Berlin"
    roles = dict(StaffMembership.objects.filter(tenant=tenant).values_list("user__username", "role"))
    assert roles == {"admin": "admin", "marketing": "marketing", "accountant": "accountant"}
    assert get_user_model().objects.get(username=SUPERUSER[0]).is_superuser

    welcome = CouponBook.objects.get(tenant=tenant, name="Welcome 10%")
    codes = Code.objects.filter(book=welcome)
    assert codes.count() == 200
    assert all(re.fullmatch(r"WELCOME-[A-Z2-9]{6}", code) for code in codes.values_list("code", flat=True))
    assert codes.filter(state=Code.State.ASSIGNED).exists()
    assert codes.filter(state=Code.State.REDEEMED).exists()
    assert codes.filter(state=Code.State.VOIDED).count() == 1
    assert codes.filter(state=Code.State.FREE).exists()
    active_locks = Reservation.objects.filter(book=welcome, status=Reservation.Status.ACTIVE, expires_at__gt=timezone.now())
    assert active_locks.exists()
    welcome_redemptions = Redemption.objects.filter(book=welcome)
    assert welcome_redemptions.exists()
    assert welcome_redemptions.filter(reversed_at__isnull=False).count() == 1

    shared = CouponBook.objects.get(tenant=tenant, name=SHARED_BOOK)
    assert shared.uses_per_code == 1000
    summer = Code.objects.get(book=shared)
    assert summer.code == SHARED_CODE
    assert summer.redeemed_count == Redemption.objects.filter(book=shared).count() > 1

    # A campaign with its limits, used, locked and refunded: its counter is its standing redemptions.
    limited = CouponBook.objects.get(tenant=tenant, name=LIMITED_BOOK)
    assert (limited.max_redemptions, limited.budget_amount) == (LIMITED_MAX_REDEMPTIONS, LIMITED_BUDGET)
    standing = limited.redemptions.filter(reversed_at__isnull=True)
    assert BookCounter.objects.get(book=limited).redemptions == standing.count() == LIMITED_REDEEMED - 1
    assert Reservation.objects.filter(book=limited, status=Reservation.Status.ACTIVE).count() == LIMITED_LOCKED

    # Books in EUR and in USD, redemptions spread over the last 30 days, some refunded.
    redemptions = Redemption.objects.filter(tenant=tenant)
    assert CouponBook.objects.filter(tenant=tenant).count() >= 4
    assert set(redemptions.values_list("currency", flat=True)) == {"EUR", "USD"}
    assert redemptions.filter(reversed_at__isnull=False).count() >= 4
    now = timezone.now()
    times = list(redemptions.values_list("redeemed_at", flat=True))
    assert all(now - timedelta(days=30) < when <= now for when in times)
    assert len({when.astimezone(tenant.zoneinfo).date() for when in times}) >= 20  # a month of bars, not one
    assert CouponBook.objects.get(tenant=tenant, currency="USD").redemptions.filter(currency="USD").count() == 10
    for redemption in redemptions:
        event = Event.objects.get(kind=Event.Kind.REDEEMED, data__redemption=redemption.pk)
        assert event.created_at == redemption.redeemed_at
        assert redemption.reversed_at is None or redemption.reversed_at > redemption.redeemed_at
    assert "EUR" in output and "USD" in output

    # Written by the services: one batch event for the generation and upload, one per state change.
    kinds = set(Event.objects.filter(tenant_id=tenant.pk).values_list("kind", flat=True))
    assert {"generated", "uploaded", "assigned", "locked", "redeemed", "reversed", "voided"} <= kinds
    assert Event.objects.filter(kind=Event.Kind.REDEEMED).count() == Redemption.objects.count()

    assert "Demo data loaded" in output
    assert "http://127.0.0.1:8000/admin/" in output
    for username, (_role, password) in STAFF_USERS.items():
        assert re.search(rf"{username}\s+password {password}", output)
        assert get_user_model().objects.get(username=username).check_password(password)


def test_seed_demo_prints_an_api_secret_that_works(debug_on):
    output = run("seed_demo")

    client_id = re.search(r"client_id\s+(\S+)", output).group(1)
    secret = re.search(r"client_secret\s+(\S+)", output).group(1)
    client = api_client_authenticate(client_id=client_id, secret=secret)
    assert client is not None and client.tenant.slug == "demo"


def test_seed_demo_twice_changes_nothing_and_says_so(debug_on):
    first = run("seed_demo")
    counts = row_counts()

    second = run("seed_demo", "--base-url", "http://localhost:9000/")

    assert row_counts() == counts
    assert "loaded already" in second
    assert "nothing was changed" in second
    assert "http://localhost:9000/admin/" in second
    client_id = re.search(r"client_id\s+(\S+)", first).group(1)
    assert client_id in second
    assert "client_secret" not in second  # the secret is not stored, so it cannot be shown again
    assert "create_api_client demo" in second


def test_seed_demo_refuses_to_run_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        run("seed_demo")

    assert not Tenant.objects.exists()


def test_seed_demo_without_debug_when_told(settings):
    settings.DEBUG = False

    run("seed_demo", "--allow-without-debug")

    assert Tenant.objects.filter(slug="demo").exists()


def test_seed_demo_fails_whole_when_a_demo_user_name_is_taken(debug_on):
    get_user_model().objects.create_user(username="marketing", password="someone-elses-pass")

    with pytest.raises(CommandError, match="marketing"):
        run("seed_demo")

    assert not Tenant.objects.exists()
    assert not CouponBook.objects.exists()
    assert get_user_model().objects.count() == 1
