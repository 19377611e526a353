"""Who is calling the API: an API client of a tenant, or one end user of a tenant (request.user)."""

import hashlib
from dataclasses import dataclass

from core.actors import Actor
from tenants.models import ApiClient, Tenant

# Actor ids are stored in 150 characters; a longer end-user id is recorded as a prefix and a digest.
ACTOR_ID_MAX = 150


def _actor_id(value: str) -> str:
    if len(value) <= ACTOR_ID_MAX:
        return value
    return value[:100] + "~" + hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. `user_id` is set for an end user (the token's `sub`), None for a client."""

    tenant: Tenant
    client: ApiClient | None = None
    user_id: str | None = None
    key_id: str = ""  # the end-user signing key's kid

    is_authenticated = True
    is_anonymous = False

    @property
    def is_end_user(self) -> bool:
        return self.user_id is not None

    @property
    def actor(self) -> Actor:
        if self.client is not None:
            return Actor.api_client(self.client)
        return Actor.end_user(_actor_id(self.user_id or ""))

    @property
    def ident(self) -> str:
        """Stable, unique name of the caller: scopes idempotency keys and throttling counters."""
        if self.client is not None:
            return f"client:{self.client.client_id}"
        digest = hashlib.sha256((self.user_id or "").encode()).hexdigest()[:40]
        return f"end_user:{self.key_id}:{digest}"

    def __str__(self) -> str:
        return self.ident
