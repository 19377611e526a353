"""Idempotency-Key on POST: a retry with the same key and request replays the first answer.

A view declares it on its handler (`@operation(..., once=True)`, which applies @idempotent); the handler reads the key (empty without the
header) from `self.idempotency_key`. The schema documents the header for every handler so decorated.

The key row is inserted FIRST inside the transaction that runs the service, and the answer is written to it
before that transaction commits: the key and the change it guards commit together or not at all. A concurrent
request with the same key blocks on the unique index until the first one has finished, then finds the stored
answer and replays it. An error answer rolls the transaction back, key row included, so a retry after an
error runs again (nothing was changed the first time).
"""

import functools
import hashlib
import json
import re
from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core.exceptions import ApplicationError

from .models import IdempotencyKey
from .principals import Principal

HEADER = "Idempotency-Key"
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


def _run_once(request, run: Callable[[str], Response]) -> Response:
    """Run `run(key)` once per Idempotency-Key (or always, without the header), replaying stored answers."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return run("")
    key = clean_key(raw)
    principal: Principal = request.user
    fingerprint = request_fingerprint(request)
    scope = {"tenant": principal.tenant, "principal": principal.ident, "key": key}
    stored = IdempotencyKey.objects.filter(**scope).first()
    if stored is not None:
        return _replay(stored, fingerprint)
    with transaction.atomic():
        try:
            with transaction.atomic():
                # First statement of the transaction: a concurrent retry waits here on the unique index.
                row = IdempotencyKey.objects.create(
                    **scope, fingerprint=fingerprint, method=request.method, path=request.path[:500]
                )
        except IntegrityError:
            # A request with this key committed while we waited: answer as it did.
            return _replay(IdempotencyKey.objects.get(**scope), fingerprint)
        response = run(key)
        row.response_status = response.status_code
        # Stored as the client saw it (decimals and dates rendered to JSON strings).
        row.response_body = json.loads(JSONRenderer().render(response.data)) if response.data is not None else None
        row.save(update_fields=["response_status", "response_body"])
    return response


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Declares a view's handler (its `post`) idempotent: it runs once per Idempotency-Key, in the transaction
    that stores the key; a retry replays the stored answer. The handler finds the key in `self.idempotency_key`."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs) -> Response:
        def run(key: str) -> Response:
            view.idempotency_key = key
            return handler(view, request, *args, **kwargs)

        return _run_once(request, run)

    wrapper.idempotent = True
    return wrapper


def is_idempotent(view, method: str) -> bool:
    """Whether `method` of `view` is declared with @idempotent (read by the schema)."""
    return getattr(getattr(view, method.lower(), None), "idempotent", False)
