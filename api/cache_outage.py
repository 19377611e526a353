"""What a process does while the shared cache (Redis) fails it: it goes on without it, logs the outage once, tries
the cache again every `retry_seconds` (not on every request), and logs once that it is back.

Used by the rate-limit counters (api.ratelimit: they count in the process's memory meanwhile) and the credential
cache (api.credentials: every request reads its credential row meanwhile); each subclasses it with its own words
and passes its own logger.
"""

import logging
import threading
import time


class CacheOutage:
    """One process's outage state for one user of the shared cache; a subclass per user gives the words."""

    subject = ""  # who speaks, e.g. "rate limits"
    meanwhile = ""  # what the process does until the cache is back
    recovered = ""  # what it does again once it is

    def __init__(self, *, logger: logging.Logger, retry_seconds: float):
        self._logger = logger
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self.retry_at = 0.0
        self.ongoing = False

    def should_try(self) -> bool:
        """Whether to try the cache now (always, unless it failed less than `retry_seconds` ago)."""
        return time.monotonic() >= self.retry_at

    def failed(self, exc: Exception) -> None:
        """The cache failed a call: go without it until the next retry; the first failure of an outage is logged."""
        with self._lock:
            self.retry_at = time.monotonic() + self._retry_seconds
            if not self.ongoing:
                self.ongoing = True
                self._logger.error(
                    "%s: the shared cache is unreachable (%s: %s); %s until it is back (retried every %.0f s)",
                    self.subject,
                    type(exc).__name__,
                    exc,
                    self.meanwhile,
                    self._retry_seconds,
                )

    def answered(self) -> None:
        """The cache answered a call: an outage in progress ends (logged once)."""
        if self.ongoing:
            with self._lock:
                if self.ongoing:
                    self.ongoing = False
                    self._logger.warning("%s: the shared cache answers again; %s", self.subject, self.recovered)

    def forget(self) -> None:
        """As if the cache had never failed (tests)."""
        self.retry_at, self.ongoing = 0.0, False
