"""The API's credential rows (an API client with its tenant, an end-user signing key with its tenant), read once per
process and checked on every request against a version in the shared cache, so a request costs no query.

Before, every request read its client row to see a revocation (one indexed query per call, three per checkout
cycle). Now each entry a process keeps carries the version it was read at; the version lives in the shared cache
(Redis, read with one GET; without REDIS_URL Django's file cache, shared by the processes of one machine). Any write to a client, a key or
their tenant gives it a new random version (api.apps connects credential_changed to every save and delete, the
admin's included), so the next request of every process sees a version it does not hold and reads the row again:
a revocation takes effect at once everywhere, as before.

Why it is safe: an entry is trusted only while the shared version equals the one read BEFORE its row was read.
The version is written twice: at the save (inside its transaction) and again once it commits, so a process that
read the row between the two (still active) holds the first new version, which the second one replaces. Versions
are random, never a counter: a version lost from the cache (evicted, Redis restarted) comes back as a new value,
never as one a process still holds.

On the API's hot path the version is not read with a GET of its own: a view that defers the check
(api.views.base.ApiView) uses the process's entry at once (`peek`), and the version is read in the round trip that
hits the request's rate-limit counters (api.throttling, api.ratelimit: one Lua script call does both), before the
handler runs; an entry whose version moved is read again there, and a revoked caller is refused 401 as before
(api.authentication.credentials_confirm). A request whose counters are not on Redis reads the version the usual way.

The shared cache down: every request reads its row from the database (revocation still at once), the outage is
logged once and the cache is tried again every RETRY_SECONDS. A version write that failed (the cache unreachable
from the process that revoked) is logged; every entry is read again after settings.COUPONS["API_CREDENTIALS_MAX_AGE"]
seconds whatever its version, which bounds how long such a revocation can go unseen.
"""

import logging
import secrets
import time
from collections.abc import Callable
from functools import cache as once
from typing import TypeVar

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from .cache_outage import CacheOutage
from .ratelimit import VersionRead

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
VERSION_SECONDS = 24 * 3600  # a version unused this long goes; its next reader writes a new one
T = TypeVar("T")


def client_version_key(client_id: str) -> str:
    return f"api:credentials:client:{client_id}"


def signing_key_version_key(kid: str) -> str:
    return f"api:credentials:kid:{kid}"


@once
def _redis() -> redis.Redis | None:
    """The shared Redis, straight through redis-py: one GET costs about 70 us of CPU, against about 190 us through
    Django's cache (which builds a client object for every call). None without REDIS_URL: Django's file cache."""
    url = getattr(settings, "REDIS_URL", "")
    return redis.Redis.from_url(url, **getattr(settings, "REDIS_SOCKET_OPTIONS", {})) if url else None


def _versions_read(version_key: str) -> str:
    """The entry's version, a new one written first when there is none (whoever writes first wins)."""
    shared = _redis()
    if shared is None:
        version = cache.get(version_key)
        if version is None:
            cache.add(version_key, secrets.token_hex(8), VERSION_SECONDS)
            version = cache.get(version_key)
        return version
    version = shared.get(version_key)
    if version is None:
        shared.set(version_key, secrets.token_hex(8), ex=VERSION_SECONDS, nx=True)
        version = shared.get(version_key)
    return version


def _versions_write(version_keys: list[str]) -> None:
    shared = _redis()
    if shared is None:
        cache.set_many({key: secrets.token_hex(8) for key in version_keys}, VERSION_SECONDS)
        return
    pipeline = shared.pipeline(transaction=False)
    for key in version_keys:
        pipeline.set(key, secrets.token_hex(8), ex=VERSION_SECONDS)
    pipeline.execute()


class _CredentialsOutage(CacheOutage):
    subject = "API credentials"
    meanwhile = "every request reads its credential row"
    recovered = "cached entries are used again"


class CredentialCache:
    """One process's credential entries: {version key: (version, value, read at)}."""

    def __init__(self):
        self._entries: dict[str, tuple[str, object, float]] = {}
        self._outage = _CredentialsOutage(logger=logger, retry_seconds=RETRY_SECONDS)

    def get(self, version_key: str, load: Callable[[], T | None]) -> T | None:
        """The value `load()` reads (a row, or None when there is none), from this process's memory while the
        shared version of `version_key` is the one it was read at."""
        version = self._version(version_key)
        if version is None:
            return load()  # no shared cache: the database decides, every time
        entry = self._entries.get(version_key)
        if (
            entry is not None
            and entry[0] == version
            and time.monotonic() - entry[2] < settings.COUPONS["API_CREDENTIALS_MAX_AGE"]
        ):
            return entry[1]
        value = load()
        if value is None:
            self._entries.pop(version_key, None)
        else:
            self._entries[version_key] = (version, value, time.monotonic())
        return value

    def peek(self, version_key: str) -> tuple[bytes | str, object] | None:
        """This process's entry as (version, value), without reading the shared version: None when there is none, it
        is past its maximum age, or the shared cache is failing. Its user must confirm the version before acting on
        the value (`version_read` names what to read; api.authentication.credentials_confirm)."""
        if self._outage.ongoing or _redis() is None:
            return None
        entry = self._entries.get(version_key)
        if entry is None or time.monotonic() - entry[2] >= settings.COUPONS["API_CREDENTIALS_MAX_AGE"]:
            return None
        return entry[0], entry[1]

    def _version(self, version_key: str) -> str | None:
        if not self._outage.should_try():
            return None
        try:
            version = _versions_read(version_key)
        except Exception as exc:  # any cache failure (refused, timed out...): the database answers instead
            self._outage.failed(exc)
            return None
        self._outage.answered()
        return version

    def forget(self) -> None:
        """Drop this process's entries and its outage state (tests)."""
        self._entries.clear()
        self._outage.forget()


credential_cache = CredentialCache()


def version_read(version_key: str) -> VersionRead:
    """The read of `version_key` done in another round trip (the rate-limit script), writing a new random version
    first when there is none, as `_versions_read` does."""
    return VersionRead(version_key, secrets.token_hex(8), VERSION_SECONDS)


def _version_write(version_keys: list[str]) -> None:
    try:
        _versions_write(version_keys)
    except Exception as exc:  # the change stands; the entries age out (CREDENTIALS_MAX_AGE)
        logger.error(
            "API credentials: could not write new versions of %s (%s: %s); processes may use their old entries for up to %s s",
            ", ".join(version_keys),
            type(exc).__name__,
            exc,
            settings.COUPONS["API_CREDENTIALS_MAX_AGE"],
        )


def credentials_changed(version_keys: list[str]) -> None:
    """New versions for these entries now and once the current transaction commits (see the module docstring)."""
    if not version_keys:
        return
    _version_write(version_keys)
    transaction.on_commit(lambda: _version_write(version_keys))


# --- Receivers (connected in api.apps): every write path of these rows, the admin's included ------------------


def client_saved_or_deleted(sender, instance, **kwargs) -> None:
    credentials_changed([client_version_key(instance.client_id)])


def signing_key_saved_or_deleted(sender, instance, **kwargs) -> None:
    credentials_changed([signing_key_version_key(instance.kid)])


def tenant_saved_or_deleted(sender, instance, created: bool = False, **kwargs) -> None:
    # The cached client and key rows carry their tenant (its time zone, its name): they are read again.
    if created or instance.pk is None:
        return
    from tenants.models import ApiClient

    from .models import EndUserSigningKey

    client_ids = ApiClient.objects.filter(tenant_id=instance.pk).values_list("client_id", flat=True)
    kids = EndUserSigningKey.objects.filter(tenant_id=instance.pk).values_list("kid", flat=True)
    credentials_changed([*map(client_version_key, client_ids), *map(signing_key_version_key, kids)])
