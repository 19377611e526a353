"""Writes of the API layer: issuing API-client tokens, and registering the end-user signing keys of a tenant."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from core.exceptions import ApplicationError
from tenants.models import ApiClient, Tenant
from tenants.services import api_client_authenticate

from .models import EndUserSigningKey, IdempotencyKey

TENANT_CLAIM = "tenant_id"
CLIENT_CLAIM = "client_id"


def _access_lifetime() -> int:
    return int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())


def api_tokens_issue(*, client_id: str, client_secret: str) -> dict:
    """Exchange an API client's credentials for an access and a refresh token carrying its tenant and id."""
    client = api_client_authenticate(client_id=client_id, secret=client_secret)
    if client is None:
        raise ApplicationError("authentication_failed", "Unknown client or wrong secret.")
    refresh = RefreshToken()
    refresh[TENANT_CLAIM] = client.tenant_id
    refresh[CLIENT_CLAIM] = client.client_id
    return {
        "access": str(refresh.access_token),
        "refresh": str(refresh),
        "token_type": "Bearer",
        "expires_in": _access_lifetime(),
    }


def api_token_refresh(*, refresh: str) -> dict:
    """A new access token for a valid refresh token, while its client is still active."""
    try:
        token = RefreshToken(refresh)
    except TokenError:
        raise ApplicationError("authentication_failed", "The refresh token is invalid or expired.") from None
    if not ApiClient.objects.filter(
        client_id=token.get(CLIENT_CLAIM), tenant_id=token.get(TENANT_CLAIM), is_active=True
    ).exists():
        raise ApplicationError("authentication_failed", "This API client was revoked.")
    return {"access": str(token.access_token), "token_type": "Bearer", "expires_in": _access_lifetime()}


def end_user_key_register(*, tenant: Tenant, name: str, algorithm: str, key: str) -> EndUserSigningKey:
    """Register the key of the tenant's login service (its material checked at the edge: api.inputs
    key_material_clean); tokens it signs name the returned key's `kid`."""
    return EndUserSigningKey.objects.create(
        tenant=tenant, name=name, algorithm=algorithm, key=key, kid=f"euk_{secrets.token_hex(12)}"
    )


@transaction.atomic
def end_user_key_revoke(*, tenant: Tenant, kid: str) -> EndUserSigningKey:
    """Stop accepting tokens signed with this key, at once."""
    found = EndUserSigningKey.objects.select_for_update().filter(tenant=tenant, kid=kid).first()
    if found is None:
        raise ApplicationError("signing_key_not_found", "No such signing key.", {"kid": kid[:64]})
    if found.is_active:
        found.is_active = False
        found.revoked_at = timezone.now()
        found.save(update_fields=["is_active", "revoked_at"])
    return found


def idempotency_keys_purge(*, older_than: timedelta) -> int:
    """Forget stored Idempotency-Key answers older than `older_than` (a retry after that runs as new). Idempotent."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
