"""Idempotency-Key on POST: a retry with the same key and request replays the first answer.

A view declares it on its handler (`@operation(..., once=True)`, which applies @idempotent); the handler reads the key (empty without the
header) from `self.idempotency_key`. The schema documents the header for every handler so decorated.

The key row is inserted FIRST inside the transaction that runs the service, and the answer is written to it
before that transaction commits: the key and the change it guards commit together or not at all. A concurrent
request with the same key blocks on the unique index until the first one has finished, then finds the stored
answer and replays it. An error answer rolls the transaction back, key row included, so a retry after an
error runs again (nothing was changed the first time). The claim is one INSERT ... ON CONFLICT DO NOTHING and the
answer one UPDATE; on the checkout calls (`one_transaction=True`) the key's transaction is the service's, with no
savepoint between them, so a key costs those calls exactly these two statements.
"""

import functools
import hashlib
import re
from collections.abc import Callable
from contextlib import contextmanager

from django.db import connections, transaction
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core.exceptions import ApplicationError
from core.transactions import deadlock_retried

from .models import IdempotencyKey
from .principals import Principal

HEADER = "Idempotency-Key"
HEADER_META = "HTTP_IDEMPOTENCY_KEY"  # how WSGI presents it
MAX_KEY_LENGTH = 255
REPLAY_HEADER = "Idempotent-Replayed"
# The keys the schema documents: printable ASCII, no space at either end (HTTP strips those anyway).
KEY_PATTERN = rf"^[!-~](?:[ -~]{{0,{MAX_KEY_LENGTH - 2}}}[!-~])?$"


def request_fingerprint(request) -> str:
    """sha256 over method, path and body. Multipart bodies are hashed by field and file content."""
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\n")
    digest.update(request.path.encode())
    digest.update(b"\n")
    if request.content_type.startswith("multipart/"):
        for name in sorted(request.data.keys()):
            if name in request.FILES:
                continue
            for value in request.data.getlist(name):
                digest.update(f"{name}={value}\n".encode())
        for name in sorted(request.FILES.keys()):
            for upload in request.FILES.getlist(name):
                digest.update(f"file:{name}:{upload.name}\n".encode())
                for chunk in upload.chunks():
                    digest.update(chunk)
                upload.seek(0)
    else:
        digest.update(request.body)
    return digest.hexdigest()


def clean_key(value: str) -> str:
    if not re.fullmatch(KEY_PATTERN, value):
        raise ApplicationError(
            "invalid_input",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, with no space at either end.",
            {"field": HEADER},
        )
    return value


def _replay(row: IdempotencyKey, fingerprint: str) -> Response:
    if row.fingerprint != fingerprint:
        raise ApplicationError(
            "idempotency_key_mismatch",
            f"This {HEADER} was used with another request; use a new key for a new request.",
            {"header": HEADER},
        )
    response = Response(row.response_body, status=row.response_status)
    response[REPLAY_HEADER] = "true"
    return response


# The two statements a key adds to the call (SPEC: at most 2). Plain SQL: the ORM has no INSERT ... ON CONFLICT DO
# NOTHING RETURNING, which both claims the key and tells a replay apart in one round trip.
_CLAIM_SQL = (
    f"INSERT INTO {IdempotencyKey._meta.db_table} "
    "(tenant_id, principal, key, fingerprint, method, path, created_at) VALUES (%s, %s, %s, %s, %s, %s, now()) "
    "ON CONFLICT ON CONSTRAINT idempotency_key_unique DO NOTHING RETURNING id"
)
_ANSWER_SQL = f"UPDATE {IdempotencyKey._meta.db_table} SET response_status = %s, response_body = %s::jsonb WHERE id = %s"


@contextmanager
def _children_without_savepoint(connection):
    """Atomic blocks opened directly inside the key's transaction take no savepoint.

    Without a key, the service's own atomic block is the transaction (BEGIN ... COMMIT); with one, the key's
    transaction plays that part, so its SAVEPOINT / RELEASE pair would be two statements that guard nothing: an
    error leaving the service rolls the whole transaction back, key row included. Blocks nested deeper (a
    service's own savepoint around an insert that may clash) keep theirs. Django's Atomic asks
    connection.savepoint() before it records itself, so a direct child asks while the depth is still ours.
    """
    depth = len(connection.atomic_blocks)
    take = connection.savepoint

    def savepoint():
        return None if len(connection.atomic_blocks) == depth else take()

    connection.savepoint = savepoint
    try:
        yield
    finally:
        del connection.savepoint  # the instance attribute goes; the method shows again


def _run_once(request, run: Callable[[str], Response], *, one_transaction: bool) -> Response:
    """Run `run(key)` once per Idempotency-Key (or always, without the header), replaying stored answers."""
    # From META: request.headers builds a dict of every header, and nothing else on the checkout path needs it.
    raw = request.META.get(HEADER_META)
    if raw is None:
        return run("")
    key = clean_key(raw)
    return _run_keyed(request, run, key, request_fingerprint(request), one_transaction=one_transaction)


@deadlock_retried  # the key's transaction is the outermost one: run again whole, key claim included
def _run_keyed(request, run: Callable[[str], Response], key: str, fingerprint: str, *, one_transaction: bool) -> Response:
    principal: Principal = request.user
    scope = {"tenant": principal.tenant, "principal": principal.ident, "key": key}
    connection = connections[IdempotencyKey.objects.db]
    with transaction.atomic():
        with connection.cursor() as cursor:
            # First statement of the transaction: a concurrent request with the same key waits here on the
            # unique index until the first one has committed (then no row comes back: replay) or rolled back.
            cursor.execute(
                _CLAIM_SQL,
                [principal.tenant.pk, principal.ident, key, fingerprint, request.method, request.path[:500]],
            )
            claimed = cursor.fetchone()
        if claimed is None:
            return _replay(IdempotencyKey.objects.get(**scope), fingerprint)
        if one_transaction:
            with _children_without_savepoint(connection):
                response = run(key)
        else:
            response = run(key)
        # Stored as the client saw it (decimals and dates rendered to JSON strings).
        body = JSONRenderer().render(response.data).decode() if response.data is not None else None
        with connection.cursor() as cursor:
            cursor.execute(_ANSWER_SQL, [response.status_code, body, claimed[0]])
    return response


def idempotent(handler: Callable[..., Response] | None = None, *, one_transaction: bool = False):
    """Declares a view's handler (its `post`) idempotent: it runs once per Idempotency-Key, in the transaction
    that stores the key; a retry replays the stored answer. The handler finds the key in `self.idempotency_key`.

    `@idempotent(one_transaction=True)`: the handler calls one service that is one atomic block, whose errors
    leave it whole (nothing catches them inside the transaction). That block then takes no savepoint: the key's
    transaction is the service's, and a key costs the call two statements. A service that catches an error of
    its own outer atomic block to try again (an upload meeting a concurrent one) needs that savepoint: plain
    `@idempotent` keeps it (two statements more)."""

    def declare(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def wrapper(view, request, *args, **kwargs) -> Response:
            def run(key: str) -> Response:
                view.idempotency_key = key
                return handler(view, request, *args, **kwargs)

            return _run_once(request, run, one_transaction=one_transaction)

        wrapper.idempotent = True
        return wrapper

    return declare(handler) if handler is not None else declare


def is_idempotent(view, method: str) -> bool:
    """Whether `method` of `view` is declared with @idempotent (read by the schema)."""
    return getattr(getattr(view, method.lower(), None), "idempotent", False)
