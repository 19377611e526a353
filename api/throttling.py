"""Rate limits per API client (or end user) and scope, counted in the default cache (Redis in production).

Scopes: `auth` (token endpoints, per client id and address), `read` (GET), `write` (everything else), and
`lookup_failed`: code look-ups that answered 404 code_not_found, a much lower limit that stops anyone from
guessing codes. Rates come from settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read on every request (so
a test or an operator can change them without a restart of the class definitions).
"""

import hashlib
import time

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .principals import Principal

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class _SettingsRateThrottle(SimpleRateThrottle):
    cache = cache

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class ClientScopeThrottle(_SettingsRateThrottle):
    """`read` or `write` per caller; a view may name its own scope with `throttle_scope`."""

    def allow_request(self, request, view):
        self.scope = getattr(view, "throttle_scope", None) or ("read" if request.method in SAFE_METHODS else "write")
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def __init__(self):
        # The scope (and so the rate) is only known per request: see allow_request.
        self.rate = None

    def get_cache_key(self, request, view):
        principal = request.user
        if isinstance(principal, Principal):
            ident = principal.ident
        else:
            # Token endpoints: per address and the client id tried, so one client's typos do not lock out others.
            client_id = ""
            if isinstance(getattr(request, "data", None), dict):
                client_id = str(request.data.get("client_id", ""))[:64]
            # Hashed: the client id tried is caller input, and cache keys must stay plain ASCII.
            tried = hashlib.sha256(client_id.encode()).hexdigest()[:24]
            ident = f"anon:{self.get_ident(request)}:{tried}"
        return f"throttle:{self.scope}:{ident}"


class FailedLookupThrottle(_SettingsRateThrottle):
    """Refuses a caller's code look-ups once too many of their recent look-ups named unknown codes.

    Only failures are counted (by record_failure, from the exception handler); a request is refused while the
    count of failures in the window is at the limit.
    """

    scope = "lookup_failed"

    def allow_request(self, request, view):
        if not getattr(view, "counts_failed_lookups", False) or self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = time.time()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return len(self.history) < self.num_requests

    def get_cache_key(self, request, view):
        principal = request.user
        if not isinstance(principal, Principal):
            return None
        return f"throttle:{self.scope}:{principal.ident}"

    @classmethod
    def record_failure(cls, request, view) -> None:
        if not getattr(view, "counts_failed_lookups", False):
            return
        throttle = cls()
        if throttle.rate is None:
            return
        key = throttle.get_cache_key(request, view)
        if key is None:
            return
        now = time.time()
        history = [t for t in throttle.cache.get(key, []) if t > now - throttle.duration]
        history.insert(0, now)
        throttle.cache.set(key, history, throttle.duration)
