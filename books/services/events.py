"""Recording code history: called by every service inside the transaction of its change."""

from core.actors import Actor

from ..models import Code, CouponBook, Event, Reservation


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
    return Event.objects.create(
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
