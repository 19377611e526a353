"""Admin sign-in cannot be brute-forced (django-axes), and staff passwords pass Django's validators."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from tenants.models import Role
from tests.helpers import PASSWORD, staff_user

pytestmark = pytest.mark.django_db


def sign_in(client, username: str, password: str, address: str = "198.51.100.7"):
    return client.post(
        reverse("admin:login"), {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


def test_wrong_passwords_lock_the_user_out_even_with_the_right_one_after(client, tenant, settings):
    settings.AXES_FAILURE_LIMIT = 5
    user = staff_user(tenant, Role.MARKETING)
    for _ in range(4):
        assert sign_in(client, user.username, "wrong-password").status_code == 200  # the form again
    assert sign_in(client, user.username, "wrong-password").status_code == 429  # the fifth locks
    locked = sign_in(client, user.username, PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another user from the same address, and the same user from another address, are not locked out.
    other = staff_user(tenant, Role.ACCOUNTANT)
    assert sign_in(client, other.username, PASSWORD).status_code == 302
    client.logout()
    assert sign_in(client, user.username, PASSWORD, address="203.0.113.9").status_code == 302


def test_x_forwarded_for_does_not_move_the_lockout_to_another_address(client, tenant, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = staff_user(tenant, Role.MARKETING)
    for n in range(3):
        client.post(
            reverse("admin:login"),
            {"username": user.username, "password": "wrong", "next": "/admin/"},
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{n}",
        )
    assert sign_in(client, user.username, PASSWORD).status_code == 429


@pytest.mark.parametrize(
    ("username", "password"),
    [("mia.bauer", "mia.bauer"), ("sam", " " * 8), ("kim", "1234567890123"), ("lee", "short1!"), ("joe", "password123")],
)
def test_weak_staff_passwords_are_refused(tenant, monkeypatch, username, password):
    """At the edge that takes a password (create_staff_user; the admin's add form calls the same clean_password)."""
    monkeypatch.setenv("COUPONS_STAFF_PASSWORD", password)
    with pytest.raises(CommandError) as refused:
        call_command("create_staff_user", tenant.slug, username, "--role", Role.MARKETING, stdout=io.StringIO())
    assert refused.value.__cause__.code == "invalid_input"
