"""Writes of the API layer: issuing API-client tokens, and registering the end-user signing keys of a tenant."""

import secrets
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from books.inputs import clean_text
from core.exceptions import ApplicationError
from tenants.models import ApiClient, Tenant
from tenants.services import api_client_authenticate

from .models import EndUserSigningKey, IdempotencyKey

MIN_HS256_SECRET = 32
MIN_RSA_BITS = 2048
MAX_KEY_LENGTH = 16_384

TENANT_CLAIM = "tenant_id"
CLIENT_CLAIM = "client_id"


def _access_lifetime() -> int:
    return int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())


def api_tokens_issue(*, client_id: object, client_secret: object) -> dict:
    """Exchange an API client's credentials for an access and a refresh token carrying its tenant and id."""
    if not isinstance(client_id, str) or not isinstance(client_secret, str) or len(client_id) > 64 or len(client_secret) > 256:
        raise ApplicationError("authentication_failed", "Unknown client or wrong secret.")
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


def api_token_refresh(*, refresh: object) -> dict:
    """A new access token for a valid refresh token, while its client is still active."""
    if not isinstance(refresh, str) or len(refresh) > 4096:
        raise ApplicationError("authentication_failed", "The refresh token is invalid or expired.")
    try:
        token = RefreshToken(refresh)
    except TokenError:
        raise ApplicationError("authentication_failed", "The refresh token is invalid or expired.") from None
    if not ApiClient.objects.filter(
        client_id=token.get(CLIENT_CLAIM), tenant_id=token.get(TENANT_CLAIM), is_active=True
    ).exists():
        raise ApplicationError("authentication_failed", "This API client was revoked.")
    return {"access": str(token.access_token), "token_type": "Bearer", "expires_in": _access_lifetime()}


def _key_material_check(*, algorithm: str, key: str) -> str:
    if algorithm == EndUserSigningKey.Algorithm.HS256:
        if len(key) < MIN_HS256_SECRET:
            raise ApplicationError(
                "invalid_input", f"An HS256 secret needs at least {MIN_HS256_SECRET} characters.", {"field": "key"}
            )
        return key
    try:
        public = serialization.load_pem_public_key(key.strip().encode())
    except (ValueError, TypeError):
        raise ApplicationError(
            "invalid_input", "An RS256 key must be an RSA public key in PEM form (never the private key).", {"field": "key"}
        ) from None
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_RSA_BITS:
        raise ApplicationError(
            "invalid_input", f"An RS256 key must be an RSA key of {MIN_RSA_BITS} bits or more.", {"field": "key"}
        )
    return key.strip()


def end_user_key_register(*, tenant: Tenant, name: object, algorithm: object, key: object) -> EndUserSigningKey:
    """Register the key of the tenant's login service; tokens it signs name the returned key's `kid`."""
    name = clean_text(name, field="name", max_length=200)
    if not name:
        raise ApplicationError("invalid_input", "The key needs a name.", {"field": "name"})
    if algorithm not in EndUserSigningKey.Algorithm.values:
        raise ApplicationError(
            "invalid_input", f"algorithm must be one of {', '.join(EndUserSigningKey.Algorithm.values)}.", {"field": "algorithm"}
        )
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise ApplicationError("invalid_input", "key must be a non-empty string.", {"field": "key"})
    material = _key_material_check(algorithm=algorithm, key=key)
    return EndUserSigningKey.objects.create(
        tenant=tenant, name=name, algorithm=algorithm, key=material, kid=f"euk_{secrets.token_hex(12)}"
    )


@transaction.atomic
def end_user_key_revoke(*, tenant: Tenant, kid: object) -> EndUserSigningKey:
    """Stop accepting tokens signed with this key, at once."""
    found = EndUserSigningKey.objects.select_for_update().filter(tenant=tenant, kid=str(kid)[:64]).first()
    if found is None:
        raise ApplicationError("signing_key_not_found", "No such signing key.", {"kid": str(kid)[:64]})
    if found.is_active:
        found.is_active = False
        found.revoked_at = timezone.now()
        found.save(update_fields=["is_active", "revoked_at"])
    return found


def idempotency_keys_purge(*, older_than: timedelta) -> int:
    """Forget stored Idempotency-Key answers older than `older_than` (a retry after that runs as new). Idempotent."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
