"""What the operator commands share: application errors become CommandErrors (a message and a non-zero exit)."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from core.exceptions import ApplicationError


@contextmanager
def application_errors() -> Iterator[None]:
    """Turn an ApplicationError raised by a service into a CommandError with the same message and code."""
    try:
        yield
    except ApplicationError as exc:
        raise CommandError(f"{exc.message} ({exc.code})") from exc
