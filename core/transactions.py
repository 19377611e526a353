"""A transaction that PostgreSQL aborts as a deadlock's victim is run again, whole.

The services take their row locks in one order (books/lock_objects.py), but one lock can be taken out of it
without the service asking: a SKIP LOCKED pick of a limited book's allowance shard (lock_objects.
book_allowance_take) that meets a shard another use changed and committed meanwhile locks that shard's newest
version, re-checks its room there and, when none is left, skips it, still locked (PostgreSQL keeps a row lock until
the transaction or savepoint ends). A use that then recounts the book locks every shard in id order while holding
that one, and two such uses can each hold a shard the other waits for. PostgreSQL breaks the cycle by failing one
of them; its transaction rolled back has released everything, so running it again is safe, and it almost always
goes through at once (the other one is done by then). A savepoint around every pick would release the stray lock
instead, at two statements more on every use of a limited book.

Only the outermost transaction can be run again: inside an enclosing one the error goes up to it (the
Idempotency-Key's transaction retries the same way, api.idempotency).
"""

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection
from psycopg import errors

logger = logging.getLogger(__name__)

ATTEMPTS = 3

P = ParamSpec("P")
R = TypeVar("R")


def is_deadlock(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, errors.DeadlockDetected)


def deadlock_retried(function: Callable[P, R]) -> Callable[P, R]:
    """`function` (which opens its own transaction) run again, up to ATTEMPTS times in all, when PostgreSQL fails
    it as a deadlock's victim; called inside a transaction, once (the enclosing one decides)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            return function(*args, **kwargs)
        attempt = 1
        while True:
            try:
                return function(*args, **kwargs)
            except OperationalError as exc:
                if attempt == ATTEMPTS or not is_deadlock(exc):
                    raise
                logger.info("%s was a deadlock's victim (attempt %d of %d): run again", function.__name__, attempt, ATTEMPTS)
                attempt += 1

    return wrapper
