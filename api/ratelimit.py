"""Atomic rate-limit counters: `limits` storages in the shared Redis, with a per-process fallback while it is down.

Every counter is a fixed one-minute (or per-second/hour/day) window kept by an atomic increment (INCRBY + EXPIRE
in a Lua script on Redis), so N parallel requests never get more than the limit through; at a window's boundary a
caller may get up to twice the rate in a short span, which is what a fixed window allows. All the counters of one
request are hit in ONE round trip (`hit_all`, one script call), which also reads the caller's credential version
(api.credentials) when asked, and the look-up slots it gives back in one more (`refund_all`, one script call): before,
each scope cost a round trip, a refused one another for its expiry, the credential version a GET of its own, and a
refund a pipeline that redis-py precedes with a SCRIPT EXISTS (two round trips).

Without REDIS_URL (local development, one web process) the counters are the process's memory.

Redis lost: each call that fails on Redis is counted in this process's memory instead (limits' MemoryStorage), the
outage is logged once, and Redis is tried again every RETRY_PRIMARY_SECONDS, so the limits come back without a
restart. While it lasts every web process limits on its own (a caller spread over N processes gets up to N times
the rate); no request fails because of it. The cache's short socket timeouts (settings.REDIS_SOCKET_OPTIONS) keep a
dead Redis to milliseconds per try.
"""

import logging
import time
from dataclasses import dataclass
from functools import cache, lru_cache

from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string

from .cache_outage import CacheOutage

logger = logging.getLogger(__name__)

RETRY_PRIMARY_SECONDS = 5.0
_PERIODS = {"s": RateLimitItemPerSecond, "m": RateLimitItemPerMinute, "h": RateLimitItemPerHour, "d": RateLimitItemPerDay}


@lru_cache(maxsize=64)  # read for every scope of every request; an item is never changed, so one per rate string
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
    key: str = ""  # the counter's key in that storage
    retry_after: float = 0.0  # refused: seconds until the window ends


# KEYS: the counters in order, then (when ARGV[1] is 1) a credential version key; ARGV: that flag, the expiry and
# limit of each counter, then the version to write when there is none and its lifetime. Reads (or first writes) the
# version, then hits each counter once and stops at the first that goes over its limit (the later ones are not
# counted for a refused request). Returns that counter's seconds to live (-1 when none was refused), the version
# (nil when none was asked), then the count of each counter hit.
_HIT_ALL_LUA = """
local counters = #KEYS - tonumber(ARGV[1])
local result = {-1, false}
if counters < #KEYS then
    local key = KEYS[#KEYS]
    local version = redis.call("get", key)
    if not version then
        redis.call("set", key, ARGV[2 * counters + 2], "EX", ARGV[2 * counters + 3], "NX")
        version = redis.call("get", key)
    end
    result[2] = version
end
for i = 1, counters do
    local key = KEYS[i]
    local count = redis.call("incrby", key, 1)
    if count == 1 then
        redis.call("expire", key, ARGV[2 * i])
    end
    result[i + 2] = count
    if count > tonumber(ARGV[2 * i + 1]) then
        result[1] = redis.call("ttl", key)
        return result
    end
end
return result
"""

# KEYS: counters to give one hit back; ARGV: their expiries. limits' own INCRBY + EXPIRE for each (a window that
# ended meanwhile leaves a -1 that expires too), all in one call.
_REFUND_ALL_LUA = """
for i, key in ipairs(KEYS) do
    if redis.call("incrby", key, -1) == -1 then
        redis.call("expire", key, ARGV[i])
    end
end
"""


@dataclass(frozen=True)
class VersionRead:
    """A credential version to read in the same round trip as the counters (api.credentials): its key, and the
    value to write first when there is none, with its lifetime in seconds."""

    key: str
    new_value: str
    lifetime: int


class _LimitsOutage(CacheOutage):
    subject = "rate limits"
    meanwhile = "counting in each process's memory"
    recovered = "counting there again"


class ResilientLimiter:
    """Fixed-window counters on a primary storage (Redis), falling back to this process's memory when it fails."""

    def __init__(self, primary: Storage | None):
        self.primary = primary
        self.fallback = MemoryStorage()
        self.outage = _LimitsOutage(logger=logger, retry_seconds=RETRY_PRIMARY_SECONDS)

    def _call(self, operation):
        """operation(storage): on the primary while it answers, else on the fallback (never raises for Redis)."""
        if self.primary is not None and self.outage.should_try():
            try:
                result = operation(self.primary), self.primary
            except Exception as exc:  # any storage failure (refused, timed out, read-only replica...) degrades
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return result
        return operation(self.fallback), self.fallback

    @property
    def degraded(self) -> bool:
        return self.outage.ongoing

    def hit_all(self, takes: list[tuple[RateLimitItem, str]]) -> list[Hit]:
        """One hit on the counter of each (item, ident), in order, stopping at the first refused one (the last hit
        returned). On Redis one round trip whatever the number of counters."""
        if not takes:
            return []
        return self.hit_all_reading(takes, None)[0]

    def hit_all_reading(
        self, takes: list[tuple[RateLimitItem, str]], version: VersionRead | None
    ) -> tuple[list[Hit], str | None]:
        """hit_all, and the shared value of `version.key` read in the same round trip. The value is None when
        none was asked or the counters are not on Redis (its caller then reads it the usual way)."""
        if not takes and version is None:
            return [], None
        result, _ = self._call(lambda storage: self._hit_all_on(storage, takes, version))
        return result

    def _hit_all_on(
        self, storage: Storage, takes: list[tuple[RateLimitItem, str]], version: VersionRead | None
    ) -> tuple[list[Hit], str | None]:
        keys = [item.key_for(ident) for item, ident in takes]
        if isinstance(storage, RedisStorage):
            arguments = [0 if version is None else 1]
            arguments += [value for item, _ in takes for value in (item.get_expiry(), item.amount)]
            script_keys = [storage.prefixed_key(key) for key in keys]
            if version is not None:
                script_keys.append(version.key)  # the credential cache's own key, not a counter: no prefix
                arguments += [version.new_value, version.lifetime]
            ttl, shared_version, *counts = _hit_all_script(storage)(keys=script_keys, args=arguments)
            hits = []
            for (item, _), key, count in zip(takes, keys, counts, strict=False):
                allowed = count <= item.amount
                hits.append(Hit(allowed, count, storage, key, 0.0 if allowed else max(1.0, float(ttl))))
            return hits, shared_version
        hits = []
        for (item, _), key in zip(takes, keys, strict=True):
            count = storage.incr(key, item.get_expiry(), amount=1)
            allowed = count <= item.amount
            retry_after = 0.0 if allowed else max(1.0, storage.get_expiry(key) - time.time())
            hits.append(Hit(allowed, count, storage, key, retry_after))
            if not allowed:
                break
        return hits, None

    def hit(self, item: RateLimitItem, ident: str) -> Hit:
        return self.hit_all([(item, ident)])[0]

    def refund_all(self, hits: list[tuple[RateLimitItem, Hit]]) -> None:
        """Give back hits that turned out not to count (look-ups that found their code); one round trip on Redis."""
        for storage in {id(hit.storage): hit.storage for _, hit in hits}.values():
            mine = [(item, hit) for item, hit in hits if hit.storage is storage]
            try:
                if isinstance(storage, RedisStorage):
                    _refund_all_script(storage)(
                        keys=[storage.prefixed_key(hit.key) for _, hit in mine], args=[item.get_expiry() for item, _ in mine]
                    )
                else:
                    for item, hit in mine:
                        storage.incr(hit.key, item.get_expiry(), amount=-1)
            except Exception as exc:  # the hits stay counted: harmless, the window ends anyway
                if storage is self.primary:
                    self.outage.failed(exc)

    def refund(self, item: RateLimitItem, ident: str, hit: Hit) -> None:
        self.refund_all([(item, hit)])

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


def _registered(storage: RedisStorage, name: str, source: str):
    script = getattr(storage, name, None)
    if script is None:
        # redis-py's Script: EVALSHA, and EVAL once when the server does not know it yet (a restarted Redis).
        script = storage.get_connection().register_script(source)
        setattr(storage, name, script)
    return script


def _hit_all_script(storage: RedisStorage):
    return _registered(storage, "_hit_all_script", _HIT_ALL_LUA)


def _refund_all_script(storage: RedisStorage):
    return _registered(storage, "_refund_all_script", _REFUND_ALL_LUA)


@cache
def limiter() -> ResilientLimiter:
    """The process's limiter (one Redis connection pool per process)."""
    return ResilientLimiter(_primary_storage())
