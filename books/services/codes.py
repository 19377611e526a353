"""The code lifecycle, side by side: assign (random or specific), unassign, void, reserve and release (a
reservation: the API's lock and unlock), redeem and reverse (a refund), and reservation expiry and staff release.
"Lock" here means a row lock (lock_objects) only.

Each service is one transaction: it looks its rows up through the selectors, takes its row locks through
lock_objects (in the documented order), re-checks every rule of rules.py under those locks, changes rows with
conditional updates, and records its event. The redemption log (the Redemption model, its reads and exports)
lives in the redemptions app.
"""

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError
from redemptions.models import Redemption
from redemptions.selectors import redemption_get
from tenants.models import Tenant

from .. import lock_objects, rules
from ..inputs import clean_amount, clean_order_currency, clean_text, clean_ttl, clean_user_id
from ..models import Code, Event, Reservation, shuffle_keys
from ..selectors import book_get, code_get
from .events import event_record


@transaction.atomic
def code_assign_random(*, tenant: Tenant, book_id: object, user_id: object, actor: Actor) -> Code:
    """Give the user a free code of the book, chosen at random; N concurrent callers get N distinct codes."""
    user_id = clean_user_id(user_id)
    book = book_get(tenant=tenant, book_id=book_id)
    now = timezone.now()
    rules.book_assignable_check(book=book, now=now)
    lock_objects.book_user_lock_if_limited(book=book, user_id=user_id, limit=book.max_codes_per_user)
    rules.user_code_limit_check(book=book, user_id=user_id)

    # Start the walk at a random point of the shuffle order and wrap around: each call picks anew at random, and
    # concurrent callers spread over the index instead of all meeting at its first row.
    [start] = shuffle_keys(1)
    claim = lock_objects.free_codes_claim_qs(book=book)
    code = claim.filter(shuffle__gte=start).first() or claim.filter(shuffle__lt=start).first()
    if code is None:
        raise ApplicationError("book_exhausted", "No free code is left in this book.", {"book": book.pk})
    # SKIP LOCKED handed this free code to this transaction alone, and the row stays locked until it ends.
    Code.objects.filter(pk=code.pk).update(state=Code.State.ASSIGNED, user_id=user_id, assigned_at=now)
    # The row is locked and was just written: mirror the update instead of reading it back.
    code.state, code.user_id, code.assigned_at, code.book = Code.State.ASSIGNED, user_id, now, book
    event_record(book=book, code=code, kind=Event.Kind.ASSIGNED, actor=actor, user_id=user_id, data={"random": True})
    return code


@transaction.atomic
def code_assign(*, tenant: Tenant, code: object, user_id: object, actor: Actor) -> tuple[Code, bool]:
    """Assign a named code to the user. Returns (code, assigned_now); already this user's is a no-op."""
    user_id = clean_user_id(user_id)
    found = code_get(tenant=tenant, code=code)
    book = found.book
    if found.user_id == user_id and found.state != Code.State.VOIDED:
        return found, False
    lock_objects.book_user_lock_if_limited(book=book, user_id=user_id, limit=book.max_codes_per_user)
    found = lock_objects.code_relock(found)
    book = found.book
    if found.user_id == user_id and found.state != Code.State.VOIDED:
        return found, False
    rules.code_assignable_check(code=found)
    now = timezone.now()
    rules.book_assignable_check(book=book, now=now)
    rules.user_code_limit_check(book=book, user_id=user_id)
    Code.objects.filter(pk=found.pk, state=Code.State.FREE).update(state=Code.State.ASSIGNED, user_id=user_id, assigned_at=now)
    found.refresh_from_db()
    event_record(book=book, code=found, kind=Event.Kind.ASSIGNED, actor=actor, user_id=user_id)
    return found, True


@transaction.atomic
def code_reserve(*, tenant: Tenant, code: object, user_id: object, actor: Actor, ttl_seconds: object = None) -> Reservation:
    """Hold one use of the code for the user until the returned reservation's expires_at."""
    user_id = clean_user_id(user_id)
    found = code_get(tenant=tenant, code=code)
    ttl = clean_ttl(ttl_seconds, default=found.book.lock_ttl_seconds)
    lock_objects.book_user_lock_if_limited(book=found.book, user_id=user_id, limit=found.book.max_redemptions_per_user)
    found = lock_objects.code_relock(found)
    now = timezone.now()
    rules.new_use_check(code=found, user_id=user_id, now=now)
    reservation = Reservation.objects.create(
        tenant_id=found.tenant_id,
        book=found.book,
        code=found,
        user_id=user_id,
        token=secrets.token_urlsafe(24),
        expires_at=now + timedelta(seconds=ttl),
    )
    event_record(
        book=found.book,
        code=found,
        kind=Event.Kind.LOCKED,
        actor=actor,
        user_id=user_id,
        reservation=reservation,
        data={"expires_at": reservation.expires_at.isoformat()},
    )
    return reservation


@transaction.atomic
def code_release(*, tenant: Tenant, code: object, user_id: object, actor: Actor, token: object = None) -> int:
    """Release the user's reservation on the code (the one with this token, or all of theirs without one).

    Returns how many reservations were released. Releasing one that is already released or expired is a no-op
    (the caller's wish holds); a token that was consumed by a redemption is refused.
    """
    user_id = clean_user_id(user_id)
    token = clean_text(token, field="token", max_length=64)
    found = code_get(tenant=tenant, code=code, locked=True)
    held = lock_objects.reservation_lock_qs().filter(code=found, user_id=user_id)
    if token:
        reservation = rules.reservation_releasable_check(reservation=held.filter(token=token).first(), code=found)
        held = held.filter(pk=reservation.pk)
    return _reservations_release(code=found, reservations=held.filter(status=Reservation.Status.ACTIVE), actor=actor)


def _reservations_release(*, code: Code, reservations: Iterable[Reservation], actor: Actor, data: dict | None = None) -> int:
    """End each (locked, active) reservation as released, recording it; one already past its time is marked
    expired instead and not counted. Returns how many were released."""
    now = timezone.now()
    released = 0
    for reservation in reservations:
        if reservation.expires_at <= now:
            _reservation_mark_expired(reservation=reservation, now=now)
            continue
        Reservation.objects.filter(pk=reservation.pk, status=Reservation.Status.ACTIVE).update(
            status=Reservation.Status.RELEASED, ended_at=now
        )
        event_record(
            book=code.book,
            code=code,
            kind=Event.Kind.UNLOCKED,
            actor=actor,
            user_id=reservation.user_id,
            reservation=reservation,
            data=data,
        )
        released += 1
    return released


@transaction.atomic
def code_void(*, tenant: Tenant, code: object, actor: Actor, reason: object = "") -> Code:
    """Withdraw a code for good (a leaked code, say): its reservations end; its past redemptions stay."""
    reason = clean_text(reason, field="reason", max_length=1000)
    found = code_get(tenant=tenant, code=code, locked=True)
    if found.state == Code.State.VOIDED:
        return found
    _reservations_end(code=found)
    Code.objects.filter(pk=found.pk).update(state=Code.State.VOIDED)
    found.state = Code.State.VOIDED
    event_record(book=found.book, code=found, kind=Event.Kind.VOIDED, actor=actor, user_id=found.user_id, data={"reason": reason})
    return found


@transaction.atomic
def code_unassign(*, tenant: Tenant, code: object, actor: Actor) -> Code:
    """Take an assigned, unused code back into the book's free pool (its reservations end)."""
    found = code_get(tenant=tenant, code=code, locked=True)
    rules.code_unassignable_check(code=found)
    _reservations_end(code=found)
    previous = found.user_id
    Code.objects.filter(pk=found.pk).update(state=Code.State.FREE, user_id=None, assigned_at=None)
    found.refresh_from_db()
    event_record(book=found.book, code=found, kind=Event.Kind.UNASSIGNED, actor=actor, user_id=previous)
    return found


def _reservations_end(*, code: Code) -> None:
    """End every active reservation of a code that leaves circulation (voided, or taken back), in one statement:
    the code's event says why, so no event per reservation."""
    Reservation.objects.filter(code=code, status=Reservation.Status.ACTIVE).update(
        status=Reservation.Status.RELEASED, ended_at=timezone.now()
    )


def _reservation_mark_expired(*, reservation: Reservation, now: datetime) -> bool:
    """Mark one reservation expired and record it, once: the conditional update lets only one caller win."""
    changed = Reservation.objects.filter(pk=reservation.pk, status=Reservation.Status.ACTIVE, expires_at__lte=now).update(
        status=Reservation.Status.EXPIRED, ended_at=now
    )
    if changed:
        event_record(
            book=reservation.book,
            code=reservation.code,
            kind=Event.Kind.LOCK_EXPIRED,
            actor=Actor.system("expiry"),
            user_id=reservation.user_id,
            reservation=reservation,
        )
    return bool(changed)


def reservations_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Mark every reservation past its time as expired, recording one event each. Idempotent.

    Runs in batches, one transaction each, so a backlog never holds locks for long. Rows another run has
    locked are skipped (SKIP LOCKED), so overlapping runs share the work instead of doing it twice.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            batch = list(
                lock_objects.expired_reservations_lock_qs()
                .filter(expires_at__lte=now)
                .select_related("book", "code")[:batch_size]
            )
            marked = sum(_reservation_mark_expired(reservation=r, now=now) for r in batch)
        total += marked
        if len(batch) < batch_size or not marked:
            return total


@transaction.atomic
def reservations_release(*, tenant: Tenant, code: object, actor: Actor) -> int:
    """Staff: end every active reservation of the code at once, whoever holds it (a stuck checkout, say).

    Returns how many were released; one already past its time is marked expired instead (and not counted).
    """
    found = code_get(tenant=tenant, code=code, locked=True)
    held = lock_objects.reservation_lock_qs().filter(code=found, status=Reservation.Status.ACTIVE)
    return _reservations_release(code=found, reservations=held, actor=actor, data={"released_by_staff": True})


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
    currency: object = "",
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
    currency = clean_order_currency(currency, amount=amount)
    if token:
        # The reservation already counts against the user's limit: no user lock, straight to the code's.
        found = code_get(tenant=tenant, code=code, locked=True)
    else:
        found = code_get(tenant=tenant, code=code)
        lock_objects.book_user_lock_if_limited(book=found.book, user_id=user_id, limit=found.book.max_redemptions_per_user)
        found = lock_objects.code_relock(found)
    book = found.book
    now = timezone.now()

    reservation = None
    if token:
        reservation = rules.reservation_redeemable_check(
            reservation=lock_objects.reservation_lock_qs().filter(code=found, token=token, user_id=user_id).first(),
            code=found,
            now=now,
        )
        rules.held_use_check(code=found, user_id=user_id, now=now)
    else:
        rules.new_use_check(code=found, user_id=user_id, now=now)
    currency = rules.currency_check(book=book, currency=currency)
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
        currency=currency,
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
        raise rules.code_exhausted_error(code)
    code.redeemed_count += 1
    code.state = state


@transaction.atomic
def redemption_reverse(*, tenant: Tenant, redemption_id: object, actor: Actor, reason: object = "") -> Redemption:
    """Record a refund: the use returns to the code, the redemption row stays with when, why and by whom."""
    reason = clean_text(reason, field="reason", max_length=1000)
    redemption = redemption_get(tenant=tenant, redemption_id=redemption_id)
    code = lock_objects.code_relock(redemption.code)  # lock order: code, then redemption
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
    refund = {"redemption": redemption.pk, "reason": reason}
    event_record(book=code.book, code=code, kind=Event.Kind.REVERSED, actor=actor, user_id=redemption.user_id, data=refund)
    return redemption
