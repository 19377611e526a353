"""Recording code history: called by every service inside the transaction of its change.

This is also where the webhooks outbox is fed: each recorded event that has a webhook type writes its deliveries
in the same statement as the event (books/lifecycle_sql.py, the INSERT of webhooks.services.outbox_add as a
CTE), so a change, its history row and its webhooks commit together or not at all. event_row decides what is
recorded and sent; the lifecycle's write statements (lifecycle_sql) insert it with their change, and
event_record inserts it on its own.
"""

from datetime import datetime
from typing import Any

from django.utils import timezone

from core.actors import Actor
from webhooks.services import outbox_add

from .. import lifecycle_sql
from ..lifecycle_sql import (
    CLAIMED_CODE,
    CLAIMED_ID,
    CLAIMED_REDEEMED_COUNT,
    EVENT_ID,
    USED_REDEEMED_COUNT,
    USED_STATE,
    EventRow,
    FromSql,
)
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


def event_row(
    *,
    book: CouponBook | None = None,
    kind: str,
    actor: Actor,
    now: datetime | FromSql,
    code: Code | None = None,
    claimed: bool = False,
    used: bool = False,
    user_id: str | None = "",
    reservation_id: int | FromSql | None = None,
    reservation_expires_at: datetime | None = None,
    data: dict | None = None,
) -> EventRow:
    """The event of a change and its webhook's data. `code` is the code as the change leaves it; `claimed`: the
    code is the one the write statement claims (random assignment), which fills in its id, string and count;
    `used`: the write statement takes a use of `code` and fills in the state and count it leaves. `book`: the
    code's when a code is given."""
    book = book or code.book
    data = data or {}
    event = EventRow(
        tenant_id=book.tenant_id,
        book_id=book.pk,
        code_id=CLAIMED_ID if claimed else (code.pk if code is not None else None),
        kind=kind,
        actor=actor,
        user_id=user_id or "",
        data=data,
        created_at=now,
        reservation_id=reservation_id,
    )
    webhook_type = WEBHOOK_TYPES.get(kind)
    if webhook_type is None or event.code_id is None:
        return event
    webhook: dict[str, Any] = {
        "event": EVENT_ID,
        "code": CLAIMED_CODE if claimed else code.code,
        "book": book.pk,
        "state": Code.State.ASSIGNED if claimed else (USED_STATE if used else code.state),
        "redeemed_count": CLAIMED_REDEEMED_COUNT if claimed else (USED_REDEEMED_COUNT if used else code.redeemed_count),
        "user_id": user_id or None,
        "actor": {"type": actor.kind, "id": actor.id},
        **data,
    }
    if reservation_id is not None:
        # The hold's time, never its token (the token is the holder's secret).
        webhook["reservation"] = {"id": reservation_id, "expires_at": reservation_expires_at}
    event.webhook_type, event.webhook_data = webhook_type, webhook
    return event


def event_record(
    *,
    book: CouponBook | None = None,
    kind: str,
    actor: Actor,
    code: Code | None = None,
    user_id: str | None = "",
    reservation: Reservation | None = None,
    data: dict | None = None,
) -> int:
    """Record an event (and its webhook deliveries) on its own, in one statement; returns the event's id."""
    event = event_row(
        book=book,
        kind=kind,
        actor=actor,
        now=timezone.now(),
        code=code,
        user_id=user_id,
        reservation_id=reservation.pk if reservation is not None else None,
        reservation_expires_at=reservation.expires_at if reservation is not None else None,
        data=data,
    )
    return lifecycle_sql.event_insert(event)


def book_updated_record(*, book: CouponBook, changed: list[str]) -> None:
    """The book.updated webhook of a change to a book's settings (in the transaction of the change)."""
    outbox_add(
        tenant_id=book.tenant_id,
        event_type="book.updated",
        data={"book": book.pk, "name": book.name, "status": book.status, "changed": sorted(changed)},
        occurred_at=book.updated_at,
        ordering_key=f"book:{book.pk}",
    )
