"""Recording code history: called by every service inside the transaction of its change.

This is also where the webhooks outbox is fed: each recorded event that has a webhook type writes its deliveries
in the same transaction (webhooks.services.outbox_add), so a change, its history row and its webhooks commit
together or not at all.
"""

from typing import Any

from core.actors import Actor
from webhooks.services import outbox_add

from ..models import Code, CouponBook, Event, Reservation

# The history kinds that integrators can receive, and their webhook event types (SPEC "Webhooks"). Bulk creation
# and unassignment have none.
WEBHOOK_TYPES = {
    Event.Kind.ASSIGNED: "code.assigned",
    Event.Kind.LOCKED: "code.locked",
    Event.Kind.UNLOCKED: "code.unlocked",
    Event.Kind.LOCK_EXPIRED: "code.lock_expired",
    Event.Kind.REDEEMED: "code.redeemed",
    Event.Kind.REVERSED: "redemption.reversed",
    Event.Kind.VOIDED: "code.voided",
}


def event_record(
    *,
    book: CouponBook,
    kind: str,
    actor: Actor,
    code: Code | None = None,
    user_id: str | None = "",
    reservation: Reservation | None = None,
    data: dict | None = None,
) -> Event:
    event = Event.objects.create(
        tenant_id=book.tenant_id,
        book=book,
        code=code,
        reservation=reservation,
        kind=kind,
        user_id=user_id or "",
        actor_type=actor.kind,
        actor_id=actor.id,
        data=data or {},
    )
    webhook_type = WEBHOOK_TYPES.get(kind)
    if webhook_type is not None and code is not None:
        outbox_add(
            tenant_id=book.tenant_id,
            event_type=webhook_type,
            data=_webhook_data(event=event, code=code, reservation=reservation),
            occurred_at=event.created_at,
            # One queue per code: a receiver gets a code's events in the order they happened.
            ordering_key=f"code:{code.pk}",
        )
    return event


def _webhook_data(*, event: Event, code: Code, reservation: Reservation | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event": event.pk,
        "code": code.code,
        "book": event.book_id,
        "state": code.state,
        "redeemed_count": code.redeemed_count,
        "user_id": event.user_id or None,
        "actor": {"type": event.actor_type, "id": event.actor_id},
        **event.data,
    }
    if reservation is not None:
        # The hold's time, never its token (the token is the holder's secret).
        data["reservation"] = {"id": reservation.pk, "expires_at": reservation.expires_at}
    return data


def book_updated_record(*, book: CouponBook, changed: list[str]) -> None:
    """The book.updated webhook of a change to a book's settings (in the transaction of the change)."""
    outbox_add(
        tenant_id=book.tenant_id,
        event_type="book.updated",
        data={"book": book.pk, "name": book.name, "status": book.status, "changed": sorted(changed)},
        occurred_at=book.updated_at,
        ordering_key=f"book:{book.pk}",
    )
