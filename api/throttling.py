"""Rate limits of the API: what is counted, per whom. The counters themselves are in api.ratelimit (atomic).

Scopes (rates in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read on every request):
- `read` (GET) and `write` (everything else) per caller: an API client, or one end user (key and subject).
- `auth`: the token endpoints, per client address and client id tried (one client's typos do not lock out the
  others behind the same address), and `auth_address` per address whatever the client id (rotating made-up client
  ids does not lift the limit). The address is read behind the configured proxies (core.addresses).
- `lookup_failed`: code look-ups that answered 404 code_not_found, per end user (the `user_id` a client sends, or
  the end-user token's subject), and `lookup_failed_client` for all of a client's look-ups together (for end-user
  tokens: all those of one signing key), far higher and logged when reached. Each look-up takes a slot before it runs and gives it back unless it missed, so a parallel
  burst of guesses never gets more than the limit through; a caller at the limit is refused on every code look-up,
  existing codes included, so a refusal tells nothing about which codes exist.
"""

import hashlib
import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from books.inputs import MAX_USER_ID_LENGTH
from core.addresses import client_address

from .principals import Principal
from .ratelimit import Hit, limiter, rate_parse

logger = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _digest(value: str) -> str:
    # Caller input in a cache key: hashed, so keys stay short plain ASCII whatever was sent.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _rate(scope: str):
    return rate_parse(api_settings.DEFAULT_THROTTLE_RATES.get(scope))


class _LimitsThrottle(BaseThrottle):
    def __init__(self):
        self._wait: float | None = None

    def _take(self, scope: str, ident: str) -> tuple[Hit | None, object]:
        """One hit on the scope's counter for ident; (None, None) when the scope has no rate."""
        item = _rate(scope)
        if item is None:
            return None, None
        hit = limiter().hit(item, f"{scope}:{ident}")
        if not hit.allowed:
            self._wait = limiter().retry_after(item, f"{scope}:{ident}")
        return hit, item

    def wait(self):
        return self._wait

    def get_ident(self, request):
        return client_address(request)


class ClientScopeThrottle(_LimitsThrottle):
    """`read` or `write` per caller; a view may name its own scope with `throttle_scope` (the token views: `auth`)."""

    def allow_request(self, request, view):
        scope = getattr(view, "throttle_scope", None) or ("read" if request.method in SAFE_METHODS else "write")
        principal = request.user
        if isinstance(principal, Principal):
            keys = [(scope, principal.ident)]
        else:
            client_id = ""
            if isinstance(getattr(request, "data", None), dict):
                client_id = str(request.data.get("client_id", ""))[:64]
            address = self.get_ident(request)
            keys = [(scope, f"{address}:{_digest(client_id)}"), (f"{scope}_address", address)]
        for key_scope, ident in keys:
            hit, _ = self._take(key_scope, ident)
            if hit is not None and not hit.allowed:
                return False
        return True


def _looked_up_user(request) -> str | None:
    """The end user a code look-up is for: the token's subject, or the user_id a client sends (body or query)."""
    principal = request.user
    if principal.is_end_user:
        return principal.user_id
    value = None
    if request.method in SAFE_METHODS:
        value = request.query_params.get("user_id")
    elif isinstance(getattr(request, "data", None), dict):
        value = request.data.get("user_id")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_USER_ID_LENGTH]


class FailedLookupThrottle(_LimitsThrottle):
    """Code look-ups (views with `counts_failed_lookups`): a slot per end user and one per client, reserved first."""

    def allow_request(self, request, view):
        if not getattr(view, "counts_failed_lookups", False) or not isinstance(request.user, Principal):
            return True
        principal = request.user
        tenant_scope = f"t{principal.tenant.pk}"
        user = _looked_up_user(request)
        taken: list[tuple[object, str, Hit]] = []
        refused = False
        if user is not None:
            ident = f"{tenant_scope}:{_digest(user)}"
            hit, item = self._take("lookup_failed", ident)
            if hit is not None:
                taken.append((item, f"lookup_failed:{ident}", hit))
                refused = not hit.allowed
        if not refused:
            # The ceiling of the whole integration: its API client, or for end users the login service's key.
            owner = principal.client.client_id if principal.client is not None else f"key:{principal.key_id}"
            ident = f"{tenant_scope}:{owner}"
            hit, item = self._take("lookup_failed_client", ident)
            if hit is not None:
                taken.append((item, f"lookup_failed_client:{ident}", hit))
                refused = not hit.allowed
                if refused and hit.count == item.amount + 1:  # once per window: the first refusal
                    logger.warning(
                        "API client %s reached its client-wide failed code look-up ceiling (%s); its look-ups are "
                        "refused until the window ends",
                        owner,
                        api_settings.DEFAULT_THROTTLE_RATES.get("lookup_failed_client"),
                    )
        request._lookup_slots = taken
        return not refused


def failed_lookup_record(request) -> None:
    """The look-up answered code_not_found: its reserved slots stay counted (see failed_lookup_settle)."""
    request._lookup_missed = True


def failed_lookup_settle(request) -> None:
    """At the end of a code look-up: give the reserved slots back unless it missed."""
    slots = getattr(request, "_lookup_slots", None)
    if not slots or getattr(request, "_lookup_missed", False):
        return
    request._lookup_slots = []
    for item, ident, hit in slots:
        # A refused slot stays counted (its caller is at the limit until the window ends); the others go back.
        if hit.allowed:
            limiter().refund(item, ident, hit)
