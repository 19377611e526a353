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

All the counters of a request are hit in one round trip (ApiThrottle, api.ratelimit.hit_all_reading), which also
reads the version of the caller's credential row when authentication used it unconfirmed (api.credentials); the
look-up slots that go back, in one more.
"""

import hashlib
import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from books.inputs import MAX_USER_ID_LENGTH
from core.addresses import client_address

from .authentication import credentials_confirm
from .credentials import version_read
from .principals import Principal
from .ratelimit import limiter, rate_parse

logger = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _digest(value: str) -> str:
    # Caller input in a cache key: hashed, so keys stay short plain ASCII whatever was sent.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _rate(scope: str):
    return rate_parse(api_settings.DEFAULT_THROTTLE_RATES.get(scope))


def _scope_counters(request, view) -> list[tuple[str, str]]:
    """`read` or `write` per caller; a view may name its own scope with `throttle_scope` (the token views: `auth`,
    per address and client id tried, and per address)."""
    scope = getattr(view, "throttle_scope", None) or ("read" if request.method in SAFE_METHODS else "write")
    principal = request.user
    if isinstance(principal, Principal):
        return [(scope, principal.ident)]
    client_id = ""
    if isinstance(getattr(request, "data", None), dict):
        client_id = str(request.data.get("client_id", ""))[:64]
    address = client_address(request)
    return [(scope, f"{address}:{_digest(client_id)}"), (f"{scope}_address", address)]


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


def _lookup_counters(request, view) -> list[tuple[str, str]]:
    """Code look-ups (views with `counts_failed_lookups`): a slot per end user, then one per client."""
    if not getattr(view, "counts_failed_lookups", False) or not isinstance(request.user, Principal):
        return []
    principal = request.user
    tenant_scope = f"t{principal.tenant.pk}"
    counters = []
    user = _looked_up_user(request)
    if user is not None:
        counters.append(("lookup_failed", f"{tenant_scope}:{_digest(user)}"))
    # The ceiling of the whole integration: its API client, or for end users the login service's key.
    owner = principal.client.client_id if principal.client is not None else f"key:{principal.key_id}"
    counters.append(("lookup_failed_client", f"{tenant_scope}:{owner}"))
    return counters


class ApiThrottle(BaseThrottle):
    """Every counter of a request in one round trip to the shared cache: its scope's, then (code look-ups) the
    failed look-up slots, taken in that order and not past the first refusal."""

    def __init__(self):
        self._wait: float | None = None

    def wait(self):
        return self._wait

    def allow_request(self, request, view):
        takes = []  # (scope, item, ident, is a look-up slot)
        for counters, is_slot in ((_scope_counters(request, view), False), (_lookup_counters(request, view), True)):
            for scope, ident in counters:
                item = _rate(scope)
                if item is not None:  # a scope without a rate is not limited
                    takes.append((scope, item, f"{scope}:{ident}", is_slot))
        unconfirmed = getattr(request, "_credentials_unconfirmed", None)
        hits, shared_version = limiter().hit_all_reading(
            [(item, ident) for _, item, ident, _ in takes],
            version_read(unconfirmed.version_key) if unconfirmed is not None else None,
        )
        request._lookup_slots = [(item, hit) for (_, item, _, is_slot), hit in zip(takes, hits, strict=False) if is_slot]
        # A revoked caller is refused as such (401), whatever its counters say.
        credentials_confirm(request, shared_version)
        if not hits or hits[-1].allowed:
            return True
        refused, scope, item = hits[-1], takes[len(hits) - 1][0], takes[len(hits) - 1][1]
        self._wait = refused.retry_after
        if scope == "lookup_failed_client" and refused.count == item.amount + 1:  # once per window: the first refusal
            logger.warning(
                "API client %s reached its client-wide failed code look-up ceiling (%s); its look-ups are refused "
                "until the window ends",
                takes[len(hits) - 1][2].rsplit(":", 1)[-1],
                api_settings.DEFAULT_THROTTLE_RATES.get("lookup_failed_client"),
            )
        return False


def failed_lookup_record(request) -> None:
    """The look-up answered code_not_found: its reserved slots stay counted (see failed_lookup_settle)."""
    request._lookup_missed = True


def failed_lookup_settle(request) -> None:
    """At the end of a code look-up: give the reserved slots back (one round trip) unless it missed."""
    slots = getattr(request, "_lookup_slots", None)
    if not slots or getattr(request, "_lookup_missed", False):
        return
    request._lookup_slots = []
    # A refused slot stays counted (its caller is at the limit until the window ends); the others go back.
    limiter().refund_all([(item, hit) for item, hit in slots if hit.allowed])
