"""The service's outside dependencies seen from inside: the shared cache used so that its loss degrades a
feature instead of failing a request, and the probes behind /healthz.

The database is the one dependency the service cannot work without (rows, locks, idempotency keys, job rows).
The cache holds only what may be lost (throttle counters, job progress); the broker only carries wake-up calls
for jobs whose rows are the truth. So cache and broker failures are caught here, logged, and reported.
"""

import logging
import time

from celery import current_app
from django.core.cache import cache
from django.db import connection
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from core.middleware import DATABASE_ERRORS

logger = logging.getLogger(__name__)

# What a cache backend raises when its server is away: redis-py's errors (connection refused, timeouts) for
# Redis, OSError for the local file cache (a full or missing disk).
CACHE_ERRORS = (RedisError, OSError)
# What publishing to an unreachable broker raises: kombu wraps the transport's connection errors in its own
# OperationalError after its retry policy (CELERY_TASK_PUBLISH_RETRY_POLICY); socket errors may come through raw.
BROKER_ERRORS = (KombuError, RedisError, OSError)
# A lost cache is logged once per this many seconds per process, not on every call of a busy web process.
_WARNING_INTERVAL = 30.0
_last_warning = {"cache": 0.0}

_MISSING = object()


def _cache_lost(operation: str, exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warning["cache"] >= _WARNING_INTERVAL:
        _last_warning["cache"] = now
        logger.warning("shared cache unavailable (%s: %s: %s); degrading until it answers", operation, type(exc).__name__, exc)


def cache_get(key: str, default=None):
    """The cached value, or `default` when the key is missing or the cache is unreachable."""
    try:
        value = cache.get(key, _MISSING)
    except CACHE_ERRORS as exc:
        _cache_lost("get", exc)
        return default
    return default if value is _MISSING else value


def cache_set(key: str, value, timeout: int) -> bool:
    """Store a value; False (and logged) when the cache is unreachable. The next call simply tries again."""
    try:
        cache.set(key, value, timeout)
    except CACHE_ERRORS as exc:
        _cache_lost("set", exc)
        return False
    return True


def cache_delete(key: str) -> None:
    try:
        cache.delete(key)
    except CACHE_ERRORS as exc:
        _cache_lost("delete", exc)


# --- Probes (GET /healthz) -------------------------------------------------------------------------------


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DATABASE_ERRORS:
        return False
    return True


def cache_ok() -> bool:
    """One round trip to the cache (a read of a key that is never written)."""
    try:
        cache.get("healthz:probe")
    except CACHE_ERRORS:
        return False
    return True


BROKER_PROBE_TIMEOUT = 1.0


def broker_ok() -> bool:
    """Connect to the broker and open a channel (for Redis the channel sends a PING), within about a second."""
    probe = current_app.connection_for_write(connect_timeout=BROKER_PROBE_TIMEOUT)
    try:
        probe.ensure_connection(max_retries=0, timeout=BROKER_PROBE_TIMEOUT)
        probe.default_channel  # noqa: B018 (opening the channel is the probe)
    except BROKER_ERRORS:
        return False
    finally:
        probe.release()
    return True
