"""Webhook endpoints (register, change, rotate the secret, delete), the outbox, and sending with retries.

Outbox: `outbox_add` writes the delivery rows inside the caller's transaction (the lifecycle services call it
through books.services.events.event_record, once per recorded event), so a change and its webhooks commit
together or not at all. After the commit one Celery message wakes a worker to send them; if that message is lost
(broker down, worker gone), the beat sweeper finds the rows and sends them: a lost message only delays.

Sending (`delivery_attempt`): a sender first claims the row with a conditional UPDATE that takes a lease, so two
workers never send one delivery at once; a worker killed mid-send leaves a lease that runs out, and the sweeper
sends the delivery again (at least once: receivers de-duplicate on webhook-id). Per endpoint and ordering key (the
code), a delivery is only claimed when no earlier one of the same queue is still pending, so a receiver sees a
code's events in the order they happened. A failed attempt is retried with exponential backoff and jitter until
three days after the event, then the delivery fails; an endpoint whose attempts have all failed for five days is
disabled, with the reason shown to the tenant's admins.

Time comes in as `now` (default: the clock), so tests drive retries and leases without sleeping.
"""

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypedDict, Unpack

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from tenants.models import Tenant

from . import sender
from .models import PING, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .signing import secret_new, signed_headers

logger = logging.getLogger(__name__)

# Backoff: 5 s, 10 s, 20 s, ... doubling up to 6 h between attempts, each +/-20 % at random (so the retries of
# many deliveries that failed together do not all come back at the same second).
RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(hours=6)
RETRY_JITTER = 0.2
RETRY_WINDOW = timedelta(days=3)  # SPEC: retried for 3 days, then failed
DISABLE_AFTER = timedelta(days=5)  # SPEC: an endpoint with only failures for 5 days is disabled
PREVIOUS_SECRET_LIFETIME = timedelta(hours=24)  # SPEC: the old secret still signs for 24 hours
CHAIN_LIMIT = 100  # deliveries one task sends back to back down one code's queue before leaving the rest to others


# --- Endpoints ------------------------------------------------------------------------------------------------


class EndpointChanges(TypedDict, total=False):
    """What a caller may change on an endpoint, cleaned at the edge (webhooks/inputs.py)."""

    url: str
    events: list[str]
    description: str
    is_active: bool


def webhook_endpoint_create(
    *, tenant: Tenant, url: str, events: list[str], description: str = "", is_active: bool = True
) -> WebhookEndpoint:
    """Register an endpoint. Its `secret` is returned on the instance: callers show it once."""
    return WebhookEndpoint.objects.create(
        tenant=tenant, url=url, events=events, description=description, is_active=is_active, secret=secret_new()
    )


@transaction.atomic
def webhook_endpoint_update(*, endpoint: WebhookEndpoint, **fields: Unpack[EndpointChanges]) -> WebhookEndpoint:
    """Change url, events, description or is_active. Re-activating clears the reason it was disabled."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if "url" in fields:
        endpoint.url = fields["url"]
    if "events" in fields:
        endpoint.events = fields["events"]
    if "description" in fields:
        endpoint.description = fields["description"]
    if "is_active" in fields:
        if fields["is_active"] and not endpoint.is_active:
            endpoint.failing_since = None
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
        endpoint.is_active = fields["is_active"]
    endpoint.save()
    return endpoint


@transaction.atomic
def webhook_secret_rotate(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> WebhookEndpoint:
    """A new secret signs from now on; the current one keeps signing too (a second signature) for 24 hours."""
    now = now or timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + PREVIOUS_SECRET_LIFETIME
    endpoint.secret = secret_new()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and its delivery log (nothing more is sent to it)."""
    endpoint.delete()


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    keep_previous = endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now
    return [endpoint.secret] + ([endpoint.previous_secret] if keep_previous else [])


# --- The outbox -----------------------------------------------------------------------------------------------


# One statement finds the tenant's interested endpoints and writes their deliveries: with no endpoint it is one
# indexed read that writes nothing, with some it is their rows. (Through the ORM, a SELECT and a bulk_create cost
# about 2 ms of CPU per event, a third of a redemption's.) The lifecycle services run the same INSERT as a CTE of
# the statement that writes their event (books/lifecycle_sql.py): `{body}` and `{ordering_key}` are then SQL
# expressions that fill in the event's ids, and `{source}` joins the event's row.
_OUTBOX_INSERT = """
    INSERT INTO {delivery} (tenant_id, endpoint_id, message_id, event_type, body, ordering_key, status, attempts,
                            next_attempt_at, last_error, created_at, give_up_at)
    SELECT e.tenant_id, e.id, %(outbox_message_id)s, %(outbox_event_type)s, {body}, {ordering_key}, 'pending', 0,
           %(outbox_next_attempt_at)s, '', %(outbox_now)s, %(outbox_give_up_at)s
    FROM {endpoint} e{source}
    WHERE {targets}
    ORDER BY e.id
    RETURNING id
"""
_SUBSCRIBED = "e.tenant_id = %(outbox_tenant_id)s AND e.is_active AND e.events @> %(outbox_event_types)s::jsonb"
_ONE_ENDPOINT = "e.id = %(outbox_endpoint_id)s AND e.tenant_id = %(outbox_tenant_id)s"


def outbox_params(*, tenant_id: int, event_type: str, ordering_key: str, endpoint_id: int | None = None) -> dict[str, Any]:
    """The parameters of the outbox INSERT (all named outbox_*, so they never clash with the caller's)."""
    now = timezone.now()
    return {
        "outbox_tenant_id": tenant_id,
        "outbox_endpoint_id": endpoint_id,
        "outbox_event_types": json.dumps([event_type]),
        "outbox_message_id": f"msg_{uuid.uuid4().hex}",
        "outbox_event_type": event_type,
        "outbox_ordering_key": ordering_key[:64],
        # Sent at once by the message queued on commit; the sweeper takes it only if that message got lost.
        "outbox_next_attempt_at": now + timedelta(seconds=settings.COUPONS["WEBHOOKS_STRANDED_SECONDS"]),
        "outbox_now": now,
        "outbox_give_up_at": now + RETRY_WINDOW,
    }


def outbox_insert_sql(*, body: str, ordering_key: str, source: str) -> str:
    """The outbox INSERT to every subscribed endpoint, for the caller's own statement (a CTE): `body` and
    `ordering_key` are SQL expressions, `source` a `, table` joined to the endpoints (the event's row)."""
    return _OUTBOX_INSERT.format(
        delivery=WebhookDelivery._meta.db_table,
        endpoint=WebhookEndpoint._meta.db_table,
        targets=_SUBSCRIBED,
        body=body,
        ordering_key=ordering_key,
        source=source,
    )


def outbox_body(*, event_type: str, data: dict[str, Any], occurred_at: Any) -> dict[str, Any]:
    """A delivery's JSON body (signed and sent as stored). `occurred_at` is a datetime, or a value the caller's
    statement fills in (books/lifecycle_sql.py)."""
    timestamp = occurred_at.isoformat() if isinstance(occurred_at, datetime) else occurred_at
    return {"type": event_type, "timestamp": timestamp, "data": data}


def outbox_wake_on_commit(delivery_ids: list[int]) -> None:
    """After the caller's transaction commits, one message wakes a worker to send these deliveries."""
    if delivery_ids:
        transaction.on_commit(partial(deliveries_wake, delivery_ids))


def outbox_add(
    *,
    tenant_id: int,
    event_type: str,
    data: dict[str, Any],
    occurred_at: datetime,
    ordering_key: str = "",
    endpoint: WebhookEndpoint | None = None,
) -> list[int]:
    """Write one delivery per active endpoint of the tenant that wants `event_type` (or to `endpoint` only).

    Call it inside the transaction of the change it reports. Returns the new deliveries' ids (none when no
    endpoint is interested); after the commit, one Celery message wakes a worker to send them.
    """
    params = outbox_params(
        tenant_id=tenant_id,
        event_type=event_type,
        ordering_key=ordering_key,
        endpoint_id=endpoint.pk if endpoint is not None else None,
    )
    params["outbox_body"] = json.dumps(
        outbox_body(event_type=event_type, data=data, occurred_at=occurred_at), cls=DjangoJSONEncoder, separators=(",", ":")
    )
    sql = _OUTBOX_INSERT.format(
        delivery=WebhookDelivery._meta.db_table,
        endpoint=WebhookEndpoint._meta.db_table,
        targets=_SUBSCRIBED if endpoint is None else _ONE_ENDPOINT,
        body="%(outbox_body)s",
        ordering_key="%(outbox_ordering_key)s",
        source="",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    outbox_wake_on_commit(ids)
    return ids


def deliveries_wake(delivery_ids: list[int]) -> None:
    """Run on commit: a worker is woken to send these deliveries (see webhooks.wakeups). Never raises: the change
    is committed already, and a lost wake-up only leaves the deliveries to the sweeper."""
    from .wakeups import wake

    wake(delivery_ids)


def webhook_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a `ping` to this endpoint (whatever its event types, and even while it is inactive)."""
    now = timezone.now()
    with transaction.atomic():
        (delivery_id,) = outbox_add(
            tenant_id=endpoint.tenant_id,
            event_type=PING,
            data={"endpoint": endpoint.pk, "message": "Ping from the coupon service."},
            occurred_at=now,
            endpoint=endpoint,
        )
    return WebhookDelivery.objects.get(pk=delivery_id)


@transaction.atomic
def delivery_retry(*, delivery: WebhookDelivery, now: datetime | None = None) -> WebhookDelivery:
    """Send the delivery again now (same webhook-id). A failed or old delivery gets one attempt: its retry window
    still ends three days after the event."""
    now = now or timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=now, finished_at=None
    )
    transaction.on_commit(partial(deliveries_wake, [delivery.pk]))
    delivery.refresh_from_db()
    return delivery


# --- Sending --------------------------------------------------------------------------------------------------


def retry_delay(attempts: int, *, jitter: float | None = None) -> timedelta:
    """The wait after the `attempts`-th failed attempt: exponential, capped, with +/-20 % jitter."""
    base = min(RETRY_BASE * 2 ** min(attempts - 1, 30), RETRY_CAP)
    jitter = random.uniform(-RETRY_JITTER, RETRY_JITTER) if jitter is None else jitter  # timing spread, not a secret
    return base * (1 + jitter)


def _sendable(now: datetime) -> Q:
    """Pending, not held by a sender, its endpoint active (pings go anyway), and first in its queue."""
    earlier = WebhookDelivery.objects.filter(
        endpoint=OuterRef("endpoint"),
        ordering_key=OuterRef("ordering_key"),
        status=WebhookDelivery.Status.PENDING,
        pk__lt=OuterRef("pk"),
    )
    return (
        Q(status=WebhookDelivery.Status.PENDING)
        & (Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        & (Q(endpoint__is_active=True) | Q(event_type=PING))
        & (Q(ordering_key="") | ~Exists(earlier))
    )


def deliveries_orphaned_delete() -> int:
    """Delete the pending deliveries whose endpoint no longer exists. The table keeps plain ids (no foreign-key
    constraint, see the model): a lifecycle transaction that read the endpoint just before its deletion committed
    can still write a delivery to it, which no query shows (they join the endpoint) and nothing sends."""
    endpoint_exists = WebhookEndpoint.objects.filter(pk=OuterRef("endpoint_id"))
    deleted, _ = WebhookDelivery.objects.filter(~Exists(endpoint_exists), status=WebhookDelivery.Status.PENDING).delete()
    return deleted


def deliveries_due(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Ids of the deliveries the sweeper should send now: due for a retry, or stranded (their message lost, or
    their sender gone: the lease ran out)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(_sendable(now), next_attempt_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


@dataclass
class AttemptOutcome:
    delivery_id: int
    sent: bool  # False: not claimed (not due, held by another sender, waiting behind an earlier one, finished)
    succeeded: bool = False
    status_code: int | None = None


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> AttemptOutcome:
    """Claim the delivery if it may be sent now, send it once, and record the attempt."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=settings.COUPONS["WEBHOOKS_LEASE_SECONDS"])
    # A fresh delivery (no attempt yet) is due at once; a retried one at its next_attempt_at.
    due = Q(attempts=0) | Q(next_attempt_at__lte=now)
    claimed = WebhookDelivery.objects.filter(_sendable(now), due, pk=delivery_id).update(
        leased_until=lease_until, attempts=F("attempts") + 1
    )
    if not claimed:
        return AttemptOutcome(delivery_id=delivery_id, sent=False)
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:  # its endpoint was deleted meanwhile (the sweeper removes such rows)
        return AttemptOutcome(delivery_id=delivery_id, sent=False)
    endpoint = delivery.endpoint
    headers = signed_headers(
        secrets_=signing_secrets(endpoint, now=now),
        message_id=delivery.message_id,
        # The wall clock, even when `now` is injected: receivers compare it with their own clock (replay guard).
        timestamp=int(time.time()),
        body=delivery.body,
    )
    result = sender.post(endpoint.url, body=delivery.body, headers=headers)
    _attempt_record(delivery=delivery, result=result, now=now, lease_until=lease_until)
    return AttemptOutcome(delivery_id=delivery_id, sent=True, succeeded=result.succeeded, status_code=result.status_code)


def _describe(result: sender.SendResult) -> str:
    return f"HTTP {result.status_code}" if result.status_code is not None else (result.error or "no answer")


@transaction.atomic
def _attempt_record(*, delivery: WebhookDelivery, result: sender.SendResult, now: datetime, lease_until: datetime) -> None:
    WebhookAttempt.objects.create(
        delivery=delivery,
        attempted_at=now,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        response_body=result.answer,
        error=result.error[:500],
        succeeded=result.succeeded,
    )
    common = {
        "last_attempt_at": now,
        "last_status_code": result.status_code,
        "last_error": "" if result.succeeded else _describe(result)[:500],
    }
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING)
    if result.succeeded:
        # Whoever holds the lease now, the receiver has it: done.
        mine.update(status=WebhookDelivery.Status.SUCCEEDED, finished_at=now, next_attempt_at=None, leased_until=None, **common)
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=False).update(failing_since=None)
        return
    next_at = now + retry_delay(delivery.attempts)
    if next_at > delivery.give_up_at:
        changes = {"status": WebhookDelivery.Status.FAILED, "finished_at": now, "next_attempt_at": None}
    else:
        changes = {"next_attempt_at": next_at}
    # Only while the lease is still ours: a sender that outlived its lease must not undo a later one's result.
    mine.filter(leased_until=lease_until).update(leased_until=None, **changes, **common)
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=True).update(failing_since=now)
    _endpoint_disable_if_failing(endpoint_id=delivery.endpoint_id, now=now, last=_describe(result))


def _endpoint_disable_if_failing(*, endpoint_id: int, now: datetime, last: str) -> None:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True, failing_since__lte=now - DISABLE_AFTER).first()
    if endpoint is None:
        return
    reason = (
        f"Disabled on {now:%Y-%m-%d %H:%M} UTC: every delivery attempt since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
        f"failed (the last one: {last}). Fix the receiver, then activate the endpoint again; its pending deliveries "
        "resume then."
    )
    WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True).update(
        is_active=False, disabled_at=now, disabled_reason=reason
    )
    logger.warning("webhook endpoint %s of tenant %s disabled: %s", endpoint_id, endpoint.tenant_id, reason)


def delivery_next_in_queue(*, delivery_id: int) -> int | None:
    """The pending delivery that follows this one in its endpoint's queue for the same code, if any."""
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).values("endpoint_id", "ordering_key").first()
    if delivery is None or not delivery["ordering_key"]:
        return None
    return (
        WebhookDelivery.objects.filter(
            endpoint_id=delivery["endpoint_id"],
            ordering_key=delivery["ordering_key"],
            status=WebhookDelivery.Status.PENDING,
            pk__gt=delivery_id,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )


def deliveries_send(*, delivery_ids: list[int], now: datetime | None = None) -> list[AttemptOutcome]:
    """Send these deliveries (in id order, which is their order of occurrence). After a success, the next delivery
    of the same code's queue, which was waiting behind it, is sent at once (up to CHAIN_LIMIT of them)."""
    outcomes = []
    for delivery_id in sorted(delivery_ids):
        current: int | None = delivery_id
        for _ in range(CHAIN_LIMIT):
            outcome = delivery_attempt(delivery_id=current, now=now)
            outcomes.append(outcome)
            if not outcome.succeeded:
                break
            current = delivery_next_in_queue(delivery_id=current)
            if current is None or current in delivery_ids:
                break
    return outcomes
