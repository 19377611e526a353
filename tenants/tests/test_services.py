"""Tenants, staff users and API clients at the service layer."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password

from core.exceptions import ApplicationError
from tenants.models import ApiClient, Role, StaffMembership
from tenants.services import (
    api_client_authenticate,
    api_client_create,
    api_client_revoke,
    staff_user_create,
    tenant_create,
    tenant_get,
)
from tests.factories import rows_snapshot

pytestmark = pytest.mark.django_db
User = get_user_model()
STRONG = "c0upon-Service-Pass!"


def refused(error_code: str, call, /, **kwargs) -> ApplicationError:
    """Given a call that must break a rule: it raises `error_code` and leaves every row as it was."""
    before = (
        rows_snapshot(),
        list(User.objects.values()),
        list(StaffMembership.objects.values()),
        list(ApiClient.objects.values()),
    )
    with pytest.raises(ApplicationError) as caught:
        call(**kwargs)
    assert caught.value.code == error_code, caught.value
    assert (
        rows_snapshot(),
        list(User.objects.values()),
        list(StaffMembership.objects.values()),
        list(ApiClient.objects.values()),
    ) == before
    return caught.value


# --- Tenants --------------------------------------------------------------------------------------------------


def test_tenant_create_stores_the_tenant():
    tenant = tenant_create(slug="acme-shop", name="Acme Shop", timezone_name="Europe/Paris")
    tenant.refresh_from_db()
    assert (tenant.slug, tenant.name, tenant.timezone) == ("acme-shop", "Acme Shop", "Europe/Paris")
    assert tenant.zoneinfo.key == "Europe/Paris"
    assert tenant_get(slug="acme-shop") == tenant


def test_tenant_create_defaults_to_utc():
    assert tenant_create(slug="plain", name="Plain").timezone == "UTC"


def test_tenant_create_refuses_a_taken_slug(tenant):
    error = refused("invalid_input", tenant_create, slug=tenant.slug, name="Again")
    assert error.details == {"slug": tenant.slug}


def test_tenant_get_of_an_unknown_slug_is_not_found():
    with pytest.raises(ApplicationError) as caught:
        tenant_get(slug="nope")
    assert caught.value.code == "tenant_not_found"


# --- Staff users ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", Role.values)
def test_staff_user_create_puts_the_user_in_the_group_of_the_role(tenant, role):
    # When
    user = staff_user_create(tenant=tenant, username=f"{role}-1", password=STRONG, role=role, email="a@example.com")
    # Then
    user = User.objects.get(pk=user.pk)
    assert user.is_staff and not user.is_superuser
    assert user.check_password(STRONG)
    assert STRONG not in user.password
    assert list(user.groups.values_list("name", flat=True)) == [role]
    membership = StaffMembership.objects.get(user=user)
    assert (membership.tenant, membership.role) == (tenant, role)
    assert user.groups.get().permissions.exists()


def test_the_role_groups_carry_their_permissions(tenant):
    marketing = staff_user_create(tenant=tenant, username="m", password=STRONG, role="marketing")
    accountant = staff_user_create(tenant=tenant, username="a", password=STRONG, role="accountant")
    assert marketing.has_perm("books.add_couponbook")
    assert not marketing.has_perm("tenants.add_apiclient")
    assert accountant.has_perm("redemptions.view_redemption")
    assert not accountant.has_perm("books.change_code")


def test_staff_user_create_refuses_a_taken_username(tenant):
    # (A weak password and an unknown role are refused at the edges: tenants/tests/test_commands.py, the admin form.)
    staff_user_create(tenant=tenant, username="taken", password=STRONG, role="admin")
    refused("invalid_input", staff_user_create, tenant=tenant, username="taken", password=STRONG, role="admin")


# --- API clients ----------------------------------------------------------------------------------------------


def test_api_client_create_returns_the_secret_once_and_stores_only_its_hash(tenant):
    # When
    issued = api_client_create(tenant=tenant, name="Checkout")
    # Then
    client = ApiClient.objects.get(pk=issued.client.pk)
    assert (client.tenant, client.name, client.is_active) == (tenant, "Checkout", True)
    assert client.client_id.startswith("cli_")
    assert len(issued.secret) >= 32
    assert issued.secret not in client.secret_hash
    assert check_password(issued.secret, client.secret_hash)
    assert client.last_used_at is None
    # Each client gets its own id and secret.
    other = api_client_create(tenant=tenant, name="Checkout")
    assert other.client.client_id != client.client_id
    assert other.secret != issued.secret
    assert not check_password(other.secret, client.secret_hash)


def test_api_client_authenticate_accepts_the_right_secret_and_records_the_use(tenant):
    issued = api_client_create(tenant=tenant, name="App")
    client = api_client_authenticate(client_id=issued.client.client_id, secret=issued.secret)
    assert client.pk == issued.client.pk
    assert client.tenant == tenant
    assert ApiClient.objects.get(pk=client.pk).last_used_at is not None


def test_api_client_authenticate_refuses_a_wrong_secret_or_unknown_client(tenant):
    issued = api_client_create(tenant=tenant, name="App")
    assert api_client_authenticate(client_id=issued.client.client_id, secret="wrong") is None
    assert api_client_authenticate(client_id=issued.client.client_id, secret="") is None
    assert api_client_authenticate(client_id="cli_unknown", secret=issued.secret) is None
    assert ApiClient.objects.get(pk=issued.client.pk).last_used_at is None


def test_a_revoked_client_no_longer_authenticates(tenant):
    issued = api_client_create(tenant=tenant, name="App")
    api_client_revoke(client=issued.client)
    stored = ApiClient.objects.get(pk=issued.client.pk)
    assert (stored.is_active, stored.revoked_at is not None) == (False, True)
    assert api_client_authenticate(client_id=issued.client.client_id, secret=issued.secret) is None
    stored.refresh_from_db()  # read after the attempt: a refused client's use is not recorded
    assert stored.last_used_at is None
