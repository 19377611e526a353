"""Redeem a code (with or without a reservation token) and reverse a redemption (a refund)."""

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from books import lock_objects, rules
from books.inputs import clean_amount, clean_text, clean_user_id
from books.models import Code, Event, Reservation
from books.services.codes import book_user_lock_if_limited, code_find, code_row_lock, reservation_rules_check
from books.services.events import event_record
from core.actors import Actor
from core.exceptions import ApplicationError, id_detail
from tenants.models import Tenant

from .models import Redemption


@transaction.atomic
def code_redeem(
    *,
    tenant: Tenant,
    code: object,
    user_id: object,
    actor: Actor,
    token: object = None,
    order_ref: object = "",
    amount: object = None,
    product_id: object = "",
    idempotency_key: str = "",
) -> Redemption:
    """Consume one use of the code for the user.

    With a token, the reservation it names is consumed (it already counted against the code's uses and the
    user's limit). Without one, the same rules as a lock are checked and the use is taken in this transaction.
    Of any set of concurrent attempts on the last use, exactly one succeeds: all of them queue on the code's row
    lock, and each re-checks the uses left once it holds it.
    """
    user_id = clean_user_id(user_id)
    token = clean_text(token, field="token", max_length=64)
    order_ref = clean_text(order_ref, field="order_ref")
    product_id = clean_text(product_id, field="product_id")
    amount = clean_amount(amount)
    if token:
        # The reservation already counts against the user's limit: no user lock, straight to the code's.
        found = code_find(tenant=tenant, code=code, locked=True)
    else:
        found = code_find(tenant=tenant, code=code)
        book_user_lock_if_limited(book=found.book, user_id=user_id, limit=found.book.max_redemptions_per_user)
        found = code_row_lock(found)
    book = found.book
    now = timezone.now()

    reservation = None
    if token:
        reservation = lock_objects.reservation_lock_qs().filter(code=found, token=token, user_id=user_id).first()
        if reservation is None:
            raise ApplicationError(
                "reservation_not_found", "No reservation of this user on this code has this token.", {"code": found.code}
            )
        if reservation.status != Reservation.Status.ACTIVE:
            raise ApplicationError("reservation_not_active", f"This reservation is {reservation.status}.", {"code": found.code})
        if reservation.expires_at <= now:
            raise ApplicationError(
                "reservation_expired", "This reservation has expired; lock the code again.", {"code": found.code}
            )
        rules.code_holder_check(book=book, code=found, user_id=user_id)
        rules.book_open_check(book=book, code=found, now=now)
    else:
        reservation_rules_check(code=found, user_id=user_id, now=now)
    discount = rules.discount_for(book=book, amount=amount, product_id=product_id)

    if reservation is not None:
        consumed = Reservation.objects.filter(pk=reservation.pk, status=Reservation.Status.ACTIVE).update(
            status=Reservation.Status.CONSUMED, ended_at=now
        )
        if consumed != 1:  # pragma: no cover - the row lock above makes this unreachable
            raise ApplicationError("reservation_not_active", "This reservation is no longer active.", {"code": found.code})
    _use_take(code=found)
    redemption = Redemption.objects.create(
        tenant_id=found.tenant_id,
        book=book,
        code=found,
        reservation=reservation,
        user_id=user_id,
        redeemed_at=now,
        order_ref=order_ref,
        amount=amount,
        product_id=product_id,
        discount=discount,
        currency=book.currency,
        actor_type=actor.kind,
        actor_id=actor.id,
        idempotency_key=idempotency_key,
    )
    event_record(
        book=book,
        code=found,
        kind=Event.Kind.REDEEMED,
        actor=actor,
        user_id=user_id,
        reservation=reservation,
        data={"redemption": redemption.pk, "order_ref": order_ref},
    )
    return redemption


def _use_take(*, code: Code) -> None:
    """Count one more redemption on the code, in the database, only while a use is left.

    The caller holds the code's row lock, so the new state is decided from the locked row; the WHERE on
    redeemed_count still guards the count itself (and the CHECK constraint behind it).
    """
    used_up = code.max_uses is not None and code.redeemed_count + 1 >= code.max_uses
    state = Code.State.REDEEMED if used_up and code.state != Code.State.VOIDED else code.state
    uses = Code.objects.filter(pk=code.pk)
    if code.max_uses is not None:
        uses = uses.filter(redeemed_count__lt=F("max_uses"))
    if uses.update(redeemed_count=F("redeemed_count") + 1, state=state) != 1:
        raise ApplicationError("code_exhausted", "Every use of this code has been redeemed.", {"code": code.code})
    code.redeemed_count += 1
    code.state = state


@transaction.atomic
def redemption_reverse(*, tenant: Tenant, redemption_id: object, actor: Actor, reason: object = "") -> Redemption:
    """Record a refund: the use returns to the code, the redemption row stays with when, why and by whom."""
    reason = clean_text(reason, field="reason", max_length=1000)
    try:
        redemption = Redemption.objects.select_related("code").get(tenant=tenant, pk=int(redemption_id))
    except (Redemption.DoesNotExist, TypeError, ValueError):
        raise ApplicationError("redemption_not_found", "No such redemption.", {"redemption": id_detail(redemption_id)}) from None
    code = code_row_lock(redemption.code)  # lock order: code, then redemption
    redemption = lock_objects.redemption_lock_qs().get(pk=redemption.pk)
    if redemption.reversed_at is not None:
        raise ApplicationError(
            "redemption_already_reversed",
            "This redemption was already reversed.",
            {"reversed_at": redemption.reversed_at.isoformat()},
        )
    now = timezone.now()
    Redemption.objects.filter(pk=redemption.pk).update(
        reversed_at=now, reversal_reason=reason, reversed_by_type=actor.kind, reversed_by_id=actor.id
    )
    restored_state = Code.State.ASSIGNED if code.user_id else Code.State.FREE
    Code.objects.filter(pk=code.pk).update(
        redeemed_count=F("redeemed_count") - 1,
        state=Case(When(state=Code.State.REDEEMED, then=Value(restored_state)), default=F("state")),
    )
    redemption.refresh_from_db()
    code.refresh_from_db()
    event_record(
        book=code.book,
        code=code,
        kind=Event.Kind.REVERSED,
        actor=actor,
        user_id=redemption.user_id,
        data={"redemption": redemption.pk, "reason": reason},
    )
    return redemption
