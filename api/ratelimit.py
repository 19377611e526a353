"""Atomic rate-limit counters: `limits` storages in the shared Redis, with a per-process fallback while it is down.

Every counter is a fixed one-minute (or per-second/hour/day) window kept by the storage's own atomic increment
(a Lua INCRBY + EXPIRE on Redis), so N parallel requests never get more than the limit through; at a window's
boundary a caller may get up to twice the rate in a short span, which is what a fixed window allows.

Without REDIS_URL (local development, one web process) the counters are the process's memory.

Redis lost: each call that fails on Redis is counted in this process's memory instead (limits' MemoryStorage), the
outage is logged once, and Redis is tried again every RETRY_PRIMARY_SECONDS, so the limits come back without a
restart. While it lasts every web process limits on its own (a caller spread over N processes gets up to N times
the rate); no request fails because of it. The cache's short socket timeouts (settings.REDIS_SOCKET_OPTIONS) keep a
dead Redis to milliseconds per try.
"""

import logging
import threading
import time
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage, storage_from_string

logger = logging.getLogger(__name__)

RETRY_PRIMARY_SECONDS = 5.0
_PERIODS = {"s": RateLimitItemPerSecond, "m": RateLimitItemPerMinute, "h": RateLimitItemPerHour, "d": RateLimitItemPerDay}


def rate_parse(rate: str | None) -> RateLimitItem | None:
    """DRF's rate notation ("30/min", "1000/h", "5/s") as a `limits` item; None (no limit) for a missing rate."""
    if not rate:
        return None
    amount, _, period = rate.partition("/")
    item_class = _PERIODS.get(period.strip()[:1].lower())
    if item_class is None or not amount.strip().isdigit():
        raise ValueError(f"Unreadable rate {rate!r}: use a number of requests per s, min, h or d, e.g. '30/min'.")
    return item_class(int(amount))


@dataclass(frozen=True)
class Hit:
    allowed: bool
    count: int  # the counter after this hit (the first refused hit has count == limit + 1)
    storage: Storage  # where it was counted: a refund goes to the same place


class ResilientLimiter:
    """Fixed-window counters on a primary storage (Redis), falling back to this process's memory when it fails."""

    def __init__(self, primary: Storage | None):
        self.primary = primary
        self.fallback = MemoryStorage()
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._outage = False

    def _call(self, operation):
        """operation(storage): on the primary while it answers, else on the fallback (never raises for Redis)."""
        if self.primary is not None and time.monotonic() >= self._retry_at:
            try:
                result = operation(self.primary), self.primary
            except Exception as exc:  # any storage failure (refused, timed out, read-only replica...) degrades
                self._primary_failed(exc)
            else:
                if self._outage:
                    with self._lock:
                        if self._outage:
                            self._outage = False
                            logger.warning("rate limits: the shared cache answers again; counting there again")
                return result
        return operation(self.fallback), self.fallback

    def _primary_failed(self, exc: Exception) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + RETRY_PRIMARY_SECONDS
            if not self._outage:
                self._outage = True
                logger.error(
                    "rate limits: the shared cache is unreachable (%s: %s); counting in each process's memory until it "
                    "is back (retried every %.0f s)",
                    type(exc).__name__,
                    exc,
                    RETRY_PRIMARY_SECONDS,
                )

    @property
    def degraded(self) -> bool:
        return self._outage

    def hit(self, item: RateLimitItem, ident: str) -> Hit:
        key = item.key_for(ident)
        count, storage = self._call(lambda storage: storage.incr(key, item.get_expiry(), amount=1))
        return Hit(allowed=count <= item.amount, count=count, storage=storage)

    def refund(self, item: RateLimitItem, ident: str, hit: Hit) -> None:
        """Give back a hit that turned out not to count (a look-up that found its code)."""
        key = item.key_for(ident)
        try:
            hit.storage.incr(key, item.get_expiry(), amount=-1)
        except Exception as exc:  # the hit stays counted: harmless, the window ends anyway
            if hit.storage is self.primary:
                self._primary_failed(exc)

    def retry_after(self, item: RateLimitItem, ident: str) -> float:
        key = item.key_for(ident)
        reset, _ = self._call(lambda storage: storage.get_expiry(key))
        return max(1.0, reset - time.time())

    def reset(self) -> None:
        """Forget every counter (tests): this process's fallback, and the shared storage's rate-limit keys."""
        self.fallback.reset()
        if self.primary is not None:
            self.primary.reset()


def _primary_storage() -> Storage | None:
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    options = getattr(settings, "REDIS_SOCKET_OPTIONS", {})
    return storage_from_string(url, **options)


@cache
def limiter() -> ResilientLimiter:
    """The process's limiter (one Redis connection pool per process)."""
    return ResilientLimiter(_primary_storage())
