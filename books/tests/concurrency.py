"""Run callables at the same moment in threads, for the PostgreSQL concurrency tests.

Each thread opens its own database connection (Django's connections are per thread) before the barrier, so the
callables really start together, and closes it afterwards: a connection left open keeps the test database from
being dropped at the end of the session.
"""

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from core.exceptions import ApplicationError

# Generous: a thread only takes this long if something hangs, and then the test must fail rather than wait.
JOIN_TIMEOUT_SECONDS = 120


@dataclass
class Outcome:
    """What one callable did: returned `value`, or raised the ApplicationError whose code is `error`."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class UnexpectedErrors(AssertionError):
    """A callable raised something other than an ApplicationError (a deadlock, an IntegrityError, ...)."""


def run_concurrently(callables: Sequence[Callable[[], Any]]) -> list[Outcome]:
    """Call every callable in its own thread, all released at once; outcomes in the order of `callables`.

    An ApplicationError is an expected answer and becomes the outcome's `error`; any other exception is a bug
    (a service must never leak a database error), so it fails the calling test with every such error listed.
    """
    barrier = threading.Barrier(len(callables))
    outcomes: list[Outcome | None] = [None] * len(callables)
    unexpected: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=JOIN_TIMEOUT_SECONDS)
            outcomes[index] = Outcome(value=call())
        except ApplicationError as exc:
            outcomes[index] = Outcome(error=exc.code)
        except BaseException as exc:  # reported to the test thread below
            unexpected.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call), daemon=True) for i, call in enumerate(callables)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_SECONDS)
    hung = sum(thread.is_alive() for thread in threads)
    if hung:
        raise UnexpectedErrors(f"{hung} thread(s) still running after {JOIN_TIMEOUT_SECONDS} s")
    if unexpected:
        listed = "; ".join(f"{type(exc).__name__}: {exc}" for exc in unexpected[:5])
        raise UnexpectedErrors(f"{len(unexpected)} unexpected error(s): {listed}") from unexpected[0]
    return [outcome for outcome in outcomes if outcome is not None]


def successes(outcomes: list[Outcome]) -> list[Any]:
    return [outcome.value for outcome in outcomes if outcome.ok]


def error_counts(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(outcome.error for outcome in outcomes if not outcome.ok)
