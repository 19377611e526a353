"""Bearer-token authentication of the API: API-client tokens and end-user tokens.

- An API client's access token is issued by this service (simplejwt, HS256 with JWT_SIGNING_KEY) and carries
  `tenant_id` and `client_id`. The client row (with its tenant) comes from api.credentials: kept per process and
  checked against a version in the shared cache on every request, so a revoked client is refused at once, whatever
  its token's lifetime, without a query per request.
- On views that defer it (api.views.base.ApiView) the version of a row this process already holds is read in the
  rate-limit round trip instead (api.throttling), and `credentials_confirm` authenticates again before the handler
  runs when it moved: the same guarantee, one Redis round trip less per request.
- An end user's token is signed by the tenant's own login service with a key registered here. Its header
  `kid` names that key (which names the tenant); it must carry `sub` (the end user's id) and `exp`.
"""

import re
import time
from dataclasses import dataclass

import jwt
from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from books.inputs import MAX_USER_ID_LENGTH
from tenants.models import ApiClient

from .credentials import client_version_key, credential_cache, signing_key_version_key
from .models import EndUserSigningKey
from .principals import Principal
from .services import CLIENT_CLAIM, TENANT_CLAIM

MAX_TOKEN_LENGTH = 8192
# Client tokens whose signature was verified, with their claims: a token is signed once and used for its whole
# lifetime, and verifying it again (PyJWT's base64 checks and the HMAC) cost about 70 us of every request. Bounded;
# the expiry is checked on every use. Only a token that passed the full check is kept, so nothing is trusted that
# was not verified.
VERIFIED_TOKENS_MAX = 10_000
_verified_tokens: dict[bytes, dict] = {}
# The kid of a registered key (api.services: "euk_" and hex); anything else is refused before any query.
KID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Unconfirmed:
    """A credential row of this process's memory that authenticated a request before its shared version was read."""

    version_key: str
    version: bytes | str


def credentials_confirm(request, shared_version: bytes | str | None = None) -> None:
    """Confirm a request authenticated from an unconfirmed entry (`request._credentials_unconfirmed`), given the
    shared version read meanwhile (None: not read). A version that moved, or was not read, means authenticating
    again the usual way: the version read anew and the row read again, so a revoked caller is refused (401) before
    its handler runs, and a changed one acts with its new row. Nothing to do for a request without such an entry."""
    unconfirmed = request.__dict__.pop("_credentials_unconfirmed", None)
    if unconfirmed is None or (shared_version is not None and shared_version == unconfirmed.version):
        return
    try:
        user, auth = BearerTokenAuthentication().authenticate(request, defer=False)
    except AuthenticationFailed:
        request.user, request.auth = None, None
        raise
    request.user, request.auth = user, auth


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request, *, defer: bool = True):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2 or len(parts[1]) > MAX_TOKEN_LENGTH:
            raise AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        verified = _verified_tokens.get(parts[1])
        # A view that confirms credentials later (ApiView) may be authenticated from an unconfirmed entry.
        view = (getattr(request, "parser_context", None) or {}).get("view")
        defer = defer and getattr(view, "defers_credential_check", False)
        if verified is not None and verified["exp"] > time.time() - settings.SIMPLE_JWT["LEEWAY"]:
            return self._principal(request, verified, defer=defer)
        try:
            raw = parts[1].decode("ascii")
            header = jwt.get_unverified_header(raw)
        except (UnicodeDecodeError, jwt.PyJWTError):
            raise AuthenticationFailed("The token is not a valid JWT.") from None
        kid = header.get("kid")
        if kid is not None:
            return self._end_user(request, raw, kid, defer=defer)
        return self._client(request, raw, defer=defer)

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing or wrong.
        return f'{self.keyword} realm="api"'

    def _client(self, request, raw: str, *, defer: bool):
        try:
            token = AccessToken(raw)
        except TokenError:
            raise AuthenticationFailed("The token is invalid or expired.") from None
        client_id, tenant_id = token.get(CLIENT_CLAIM), token.get(TENANT_CLAIM)
        if not isinstance(client_id, str) or not isinstance(tenant_id, int):
            raise AuthenticationFailed("The token does not name an API client.")
        principal = self._principal(request, token.payload, defer=defer)
        if len(_verified_tokens) >= VERIFIED_TOKENS_MAX:
            # The oldest; another thread of a gthread worker may have dropped it already.
            _verified_tokens.pop(next(iter(_verified_tokens), None), None)
        _verified_tokens[raw.encode("ascii")] = token.payload
        return principal

    def _principal(self, request, payload: dict, *, defer: bool):
        """The active client a verified token names (revoked or not: checked on every request), and its claims."""
        client_id, tenant_id = payload[CLIENT_CLAIM], payload[TENANT_CLAIM]
        client = _credential(
            request,
            client_version_key(client_id),
            lambda: ApiClient.objects.select_related("tenant").filter(client_id=client_id, is_active=True).first(),
            defer=defer,
        )
        if client is None or client.tenant_id != tenant_id:
            raise AuthenticationFailed("This API client was revoked or does not exist.")
        return Principal(tenant=client.tenant, client=client), payload

    def _end_user(self, request, raw: str, kid: object, *, defer: bool):
        if not isinstance(kid, str) or not KID_RE.fullmatch(kid):
            raise AuthenticationFailed("The token's kid does not name a signing key.")
        key = _credential(
            request,
            signing_key_version_key(kid),
            lambda: EndUserSigningKey.objects.select_related("tenant").filter(kid=kid, is_active=True).first(),
            defer=defer,
        )
        if key is None:
            raise AuthenticationFailed("The token's kid does not name an active signing key.")
        try:
            # The algorithm comes from the registered key, never from the token (no algorithm confusion).
            payload = jwt.decode(
                raw,
                key.key,
                algorithms=[key.algorithm],
                options={"require": ["exp", "sub"], "verify_aud": False},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"The end-user token is invalid: {exc}.") from None
        sub = payload.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > MAX_USER_ID_LENGTH or "\x00" in sub:
            raise AuthenticationFailed(f"The token's sub must be a user id of 1 to {MAX_USER_ID_LENGTH} characters.")
        lifetime = payload["exp"] - timezone.now().timestamp()
        longest = settings.COUPONS["API_END_USER_TOKEN_MAX_SECONDS"]
        if lifetime > longest + LEEWAY_SECONDS:
            raise AuthenticationFailed(f"An end-user token may live at most {longest} seconds.")
        return Principal(tenant=key.tenant, user_id=sub.strip(), key_id=key.kid), payload


def _credential(request, version_key: str, load, *, defer: bool):
    """The credential row from this process's entry: unconfirmed when deferring (confirmed by the throttle's round
    trip or credentials_confirm before the handler runs), else checked against the shared version now."""
    if defer:
        entry = credential_cache.peek(version_key)
        if entry is not None:
            request._credentials_unconfirmed = Unconfirmed(version_key, entry[0])
            return entry[1]
    return credential_cache.get(version_key, load)
