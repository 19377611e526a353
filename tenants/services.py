"""Writes for tenants, staff users and API clients."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, get_hasher, make_password
from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError

from .models import ApiClient, Role, StaffMembership, Tenant
from .roles import role_groups_sync


def tenant_create(*, slug: str, name: str, timezone_name: str = "UTC") -> Tenant:
    """A tenant of a clean slug, name and time zone (tenants.inputs, at the edge); a taken slug is refused here."""
    if Tenant.objects.filter(slug=slug).exists():
        raise ApplicationError("invalid_input", f"A tenant with the slug {slug!r} exists already.", {"slug": slug})
    return Tenant.objects.create(slug=slug, name=name, timezone=timezone_name)


def tenant_get(*, slug: str) -> Tenant:
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise ApplicationError("tenant_not_found", f"No tenant with the slug {slug!r}.", {"slug": slug}) from None


@transaction.atomic
def staff_user_create(*, tenant: Tenant, username: str, password: str, role: Role, email: str = ""):
    """A staff user of one tenant, in the group of its role. The edge checked the password (tenants.inputs
    clean_password: Django's validators); a taken username is refused here."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ApplicationError("invalid_input", f"A user named {username!r} exists already.", {"username": username})
    user = User(username=username, email=email, is_staff=True)
    user.set_password(password)
    user.save()
    groups = role_groups_sync()
    user.groups.add(groups[role])
    StaffMembership.objects.create(user=user, tenant=tenant, role=role)
    return user


@dataclass(frozen=True)
class IssuedClient:
    client: ApiClient
    secret: str  # shown once; only its hash is stored


def api_client_create(*, tenant: Tenant, name: str) -> IssuedClient:
    secret = secrets.token_urlsafe(32)
    client = ApiClient.objects.create(
        tenant=tenant,
        name=name,
        client_id=f"cli_{secrets.token_hex(12)}",
        secret_hash=make_password(secret),
    )
    return IssuedClient(client=client, secret=secret)


_dummy_hashes: dict[str, str] = {}


def _dummy_secret_hash() -> str:
    """A hash of a random secret with the current default hasher (computed once per hasher)."""
    algorithm = get_hasher().algorithm
    if algorithm not in _dummy_hashes:
        _dummy_hashes[algorithm] = make_password(secrets.token_urlsafe(32))
    return _dummy_hashes[algorithm]


def api_client_authenticate(*, client_id: str, secret: str) -> ApiClient | None:
    """The active client with these credentials, its last-used time refreshed; None when they do not match."""
    client = ApiClient.objects.select_related("tenant").filter(client_id=client_id, is_active=True).first()
    if client is None:
        # Hash anyway, so an unknown client id costs what a wrong secret does: timing tells nothing about which
        # ids exist.
        check_password(secret, _dummy_secret_hash())
        return None
    if not check_password(secret, client.secret_hash):
        return None
    ApiClient.objects.filter(pk=client.pk).update(last_used_at=timezone.now())
    return client


def api_client_revoke(*, client: ApiClient) -> ApiClient:
    client.is_active = False
    client.revoked_at = timezone.now()
    client.save(update_fields=["is_active", "revoked_at"])
    return client
