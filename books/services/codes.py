"""The code lifecycle, side by side: assign (random or specific), unassign, void, reserve and release (a
reservation: the API's lock and unlock), redeem and reverse (a refund), and reservation expiry and staff release.
"Lock" here means a row lock (lock_objects) only.

Each service is one transaction: it looks its rows up and takes its row locks (in lock_objects' documented
order), re-checks every rule of rules.py under those locks, changes rows with conditional updates, and records
its event. The hot ones (assign at random, reserve, redeem) do it in two statements between BEGIN and COMMIT,
written as SQL in lifecycle_sql (the fetch-and-lock, then the write with its event); the rest through the ORM,
the selectors and lock_objects. The redemption log (the Redemption model, its reads and exports) lives in the
redemptions app.

Arguments are typed and already clean: the API's serializers and the admin's forms check what clients and staff
send (a bad value is their 400 or form error); a code's string is still looked up as sent, so an unknown or
malformed one is code_not_found.
"""

import copy
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError, id_detail
from core.transactions import deadlock_retried
from redemptions.models import Redemption
from redemptions.selectors import redemption_get
from tenants.models import Tenant

from .. import lifecycle_sql, lock_objects, rules
from ..inputs import is_valid_code, normalize_code
from ..models import Code, Event, Reservation, shuffle_keys
from ..selectors import code_get
from . import events
from .book_limits import book_use_hold, book_use_return, book_use_take
from .events import event_record


@transaction.atomic
def code_assign_random(*, tenant: Tenant, book_id: int, user_id: str, actor: Actor) -> Code:
    """Give the user a free code of the book, chosen at random; N concurrent callers get N distinct codes.

    Two statements between BEGIN and COMMIT (lifecycle_sql; a third when the walk wraps round): the book with the
    user's row locked, then the claim that also writes the event and returns the user's code count, checked
    before the commit.
    """
    book = lifecycle_sql.book_with_user_lock(tenant_id=tenant.pk, book_id=book_id, user_id=user_id)
    if book is None:
        raise ApplicationError("book_not_found", "No such coupon book.", {"book": id_detail(book_id)})
    now = timezone.now()
    rules.book_assignable_check(book=book, now=now)
    event = events.event_row(
        book=book, kind=Event.Kind.ASSIGNED, actor=actor, now=now, claimed=True, user_id=user_id, data={"random": True}
    )
    # Start the walk at a random point of the shuffle order and wrap around: each call picks anew at random, and
    # concurrent callers spread over the index instead of all meeting at its first row.
    [start] = shuffle_keys(1)
    claim = lifecycle_sql.free_code_claim(book=book, user_id=user_id, start=start, wrapped=False, now=now, event=event)
    rules.user_code_limit_check(book=book, held=claim.user_codes)
    if claim.code is None:
        claim = lifecycle_sql.free_code_claim(book=book, user_id=user_id, start=start, wrapped=True, now=now, event=event)
    if claim.code is None:
        raise ApplicationError("book_exhausted", "No free code is left in this book.", {"book": book.pk})
    return claim.code


@transaction.atomic
def code_assign(*, tenant: Tenant, code: str, user_id: str, actor: Actor) -> tuple[Code, bool]:
    """Assign a named code to the user. Returns (code, assigned_now); already this user's is a no-op."""
    found = _code_locked(tenant=tenant, code=code, user_id=user_id, user_limit="max_codes_per_user")[0]
    book = found.book
    if found.user_id == user_id and found.state != Code.State.VOIDED:
        return found, False
    rules.code_assignable_check(code=found)
    now = timezone.now()
    rules.book_assignable_check(book=book, now=now)
    if book.max_codes_per_user is not None:
        rules.user_code_limit_check(book=book, held=lifecycle_sql.user_codes_held(book=book, user_id=user_id))
    Code.objects.filter(pk=found.pk, state=Code.State.FREE).update(state=Code.State.ASSIGNED, user_id=user_id, assigned_at=now)
    # The row is locked and was just written: mirror the update instead of reading it back.
    found.state, found.user_id, found.assigned_at = Code.State.ASSIGNED, user_id, now
    event_record(book=book, code=found, kind=Event.Kind.ASSIGNED, actor=actor, user_id=user_id)
    return found, True


@deadlock_retried  # a limited book's recount (core/transactions.py)
@transaction.atomic
def code_reserve(*, tenant: Tenant, code: str, user_id: str, actor: Actor, ttl_seconds: int | None = None) -> Reservation:
    """Hold one use of the code for the user until the returned reservation's expires_at.

    Two statements between BEGIN and COMMIT (lifecycle_sql): the user's row and the code locked, then the
    reservation with its event, which returns the counts the use rules check before the commit.
    """
    found = _code_locked(tenant=tenant, code=code, user_id=user_id, user_limit="max_redemptions_per_user")[0]
    ttl = found.book.lock_ttl_seconds if ttl_seconds is None else ttl_seconds
    now = timezone.now()
    rules.use_open_check(code=found, user_id=user_id, now=now)
    expires_at = now + timedelta(seconds=ttl)
    event = events.event_row(
        kind=Event.Kind.LOCKED,
        actor=actor,
        now=now,
        code=found,
        user_id=user_id,
        reservation_id=lifecycle_sql.RESERVATION_ID,
        reservation_expires_at=expires_at,
        data={"expires_at": expires_at.isoformat()},
    )
    reservation, counts = lifecycle_sql.reservation_insert(
        code=found, user_id=user_id, token=secrets.token_urlsafe(24), expires_at=expires_at, now=now, event=event
    )
    rules.use_counts_check(code=found, counts=counts)
    book_use_hold(code=found)  # last: the book's counter lock, held only to the commit
    return reservation


def _code_locked(
    *, tenant: Tenant, code: object, user_id: str, user_limit: str | None = None, token: str | None = None, lock: bool = True
) -> tuple[Code, Reservation | None]:
    """The tenant's code by its string, locked with its book (lifecycle_sql.code_lock), or code_not_found."""
    value = normalize_code(code)
    found = None
    if is_valid_code(value):
        found = lifecycle_sql.code_lock(
            tenant_id=tenant.pk, code=value, user_id=user_id, user_limit=user_limit, token=token, lock=lock
        )
    if found is None:
        raise ApplicationError("code_not_found", "No such code.", {"code": value[:64]})
    return found


@transaction.atomic
def code_release(*, tenant: Tenant, code: str, user_id: str, actor: Actor, token: str | None = None) -> int:
    """Release the user's reservation on the code (the one with this token, or all of theirs without one).

    Returns how many reservations were released. Releasing one that is already released or expired is a no-op
    (the caller's wish holds); a token that was consumed by a redemption is refused.
    """
    found = code_get(tenant=tenant, code=code, locked=True)
    held = lock_objects.reservation_lock_qs().filter(code=found, user_id=user_id)
    if token:
        # The reservation is locked and read already: no second look-up of the active one.
        reservation = rules.reservation_releasable_check(reservation=held.filter(token=token).first(), code=found)
        active = [reservation] if reservation.status == Reservation.Status.ACTIVE else []
        return _reservations_release(code=found, reservations=active, actor=actor)
    return _reservations_release(code=found, reservations=held.filter(status=Reservation.Status.ACTIVE), actor=actor)


def _reservations_release(*, code: Code, reservations: Iterable[Reservation], actor: Actor, data: dict | None = None) -> int:
    """End each (locked, active) reservation as released, recording it; one already past its time is marked
    expired instead and not counted. Returns how many were released. Every hold ended leaves the (locked) code's
    `held` counter."""
    now = timezone.now()
    released = ended = 0
    for reservation in reservations:
        if reservation.expires_at <= now:
            ended += _reservation_mark_expired(reservation=reservation, now=now)
            continue
        ended += 1
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
    if ended:
        Code.objects.filter(pk=code.pk).update(held=F("held") - ended)
    return released


@transaction.atomic
def code_void(*, tenant: Tenant, code: str, actor: Actor, reason: str = "") -> Code:
    """Withdraw a code for good (a leaked code, say): its reservations end; its past redemptions stay."""
    found = code_get(tenant=tenant, code=code, locked=True)
    if found.state == Code.State.VOIDED:
        return found
    _reservations_end(code=found)
    Code.objects.filter(pk=found.pk).update(state=Code.State.VOIDED, held=0)
    found.state = Code.State.VOIDED
    event_record(book=found.book, code=found, kind=Event.Kind.VOIDED, actor=actor, user_id=found.user_id, data={"reason": reason})
    return found


@transaction.atomic
def code_unassign(*, tenant: Tenant, code: str, actor: Actor) -> Code:
    """Take an assigned, unused code back into the book's free pool (its reservations end)."""
    found = code_get(tenant=tenant, code=code, locked=True)
    rules.code_unassignable_check(code=found)
    _reservations_end(code=found)
    previous = found.user_id
    Code.objects.filter(pk=found.pk).update(state=Code.State.FREE, user_id=None, assigned_at=None, held=0)
    found.refresh_from_db()
    event_record(book=found.book, code=found, kind=Event.Kind.UNASSIGNED, actor=actor, user_id=previous)
    return found


def _reservations_end(*, code: Code) -> None:
    """End every active reservation of a code that leaves circulation (voided, or taken back), in one statement:
    the code's event says why, so no event per reservation. The caller's update of the code sets its `held` to 0."""
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
def reservations_release(*, tenant: Tenant, code: str, actor: Actor) -> int:
    """Staff: end every active reservation of the code at once, whoever holds it (a stuck checkout, say).

    Returns how many were released; one already past its time is marked expired instead (and not counted).
    """
    found = code_get(tenant=tenant, code=code, locked=True)
    held = lock_objects.reservation_lock_qs().filter(code=found, status=Reservation.Status.ACTIVE)
    return _reservations_release(code=found, reservations=held, actor=actor, data={"released_by_staff": True})


@deadlock_retried  # a limited book's recount (core/transactions.py)
def code_redeem(
    *,
    tenant: Tenant,
    code: str,
    user_id: str,
    actor: Actor,
    token: str | None = None,
    order_ref: str = "",
    amount: Decimal | None = None,
    currency: str = "",
    product_id: str = "",
    idempotency_key: str = "",
) -> Redemption:
    """Consume one use of the code for the user.

    With a token, the reservation it names is consumed (it already counted against the code's uses and the
    user's limit). Without one, the same rules as a lock are checked and the use is taken in this transaction.
    Of any set of concurrent attempts on the last use, exactly one succeeds: all of them queue on the code's row
    lock, and each re-checks the uses left once it holds it.

    Two statements between BEGIN and COMMIT (lifecycle_sql). Without a token, first on the code's counters: the
    user's row locked and the code read, then one write statement whose conditional update takes the code's
    lock, the use and the redemption at once, so the code is locked only for that statement and the COMMIT
    (what lets many redeemers share one code). When the counters refuse (no use left, or a hold past its time
    still counted) or a rule fails on the unlocked read, the locked path decides and answers: the code locked
    with its user's row, then the write. With a token, the locked path alone. The returned redemption is built
    after the transaction's block (after the COMMIT, when it is the outermost): the code is not locked for it.
    """
    request = {
        "order_ref": order_ref,
        "amount": amount,
        "currency": currency,
        "product_id": product_id,
        "idempotency_key": idempotency_key,
    }
    with transaction.atomic():
        use = None
        if not token:
            use = _redeem_counted(tenant=tenant, code=code, user_id=user_id, actor=actor, **request)
        if use is None:
            use = _redeem_locked(tenant=tenant, code=code, user_id=user_id, actor=actor, token=token or None, **request)
        # Last: the book's allowance, whose lock is held only to the commit.
        book_use_take(code=use.code, discount=use.fields["discount"], reservation=use.reservation)
    return _redemption(use)


class _Use(NamedTuple):
    """A use taken: what the stored redemption is built from (no re-read)."""

    redemption_id: int
    code: Code  # as this use leaves it
    reservation: Reservation | None
    fields: dict


def _redeem_counted(*, tenant: Tenant, code: str, user_id: str, actor: Actor, **request) -> _Use | None:
    """A redeem without a token on the code's counters (lifecycle_sql.redemption_insert_counted); None when the
    locked path must decide."""
    found = _code_locked(tenant=tenant, code=code, user_id=user_id, user_limit="max_redemptions_per_user", lock=False)[0]
    now = timezone.now()
    if not _unlocked_use_check(code=found, user_id=user_id, now=now):
        return None  # answered by the locked path, on the locked row and in the rules' order
    try:
        currency = rules.currency_check(book=found.book, currency=request["currency"])
        discount = rules.discount_for(book=found.book, amount=request["amount"], product_id=request["product_id"])
    except ApplicationError:
        return None
    # Dated by the statement when it takes the use (see redemption_insert_counted).
    at = lifecycle_sql.USED_AT
    fields = _redemption_fields(user_id=user_id, actor=actor, now=at, discount=discount, **{**request, "currency": currency})
    event = _redeemed_event(code=found, actor=actor, now=at, fields=fields, reservation=None, used=True)
    written = lifecycle_sql.redemption_insert_counted(code=found, now=now, redemption=fields, event=event)
    if written.code is None:
        # The counters refused. A read now (its snapshot taken after the write waited for the code) that finds no
        # use left at all answers; only a refusal by the holds needs the locked path's exact count.
        fresh = _code_locked(tenant=tenant, code=code, user_id=user_id, lock=False)[0]
        _unlocked_use_check(code=fresh, user_id=user_id, now=now)
        return None
    fields["redeemed_at"] = written.used_at
    # The rules again, on the code's newest row, locked now (a change since the read rolls the use back).
    used = written.code
    rules.use_open_check(code=used, user_id=user_id, now=now)
    # The counted rules judge the code as it was before this use: counted back for them rather than copied, as
    # everything between the write and the COMMIT keeps the code locked (README "Performance").
    used.redeemed_count -= 1
    rules.use_counts_check(code=used, counts=written.counts)
    used.redeemed_count += 1
    return _Use(written.redemption_id, used, None, fields)


def _unlocked_use_check(*, code: Code, user_id: str, now: datetime) -> bool:
    """On an unlocked read of the code: False when the open rules refuse (the locked path answers, on the locked
    row); code_exhausted when no use is left at all, whatever the holds.

    That refusal needs no lock: it is the answer the locked path gives on the same rows (the open rules first,
    then the counts, whose first is this one; currency and discount come after the counts), and it writes
    nothing, so the read's snapshot is its moment, as for validate. What it spares: once a hot code is used up,
    every redeemer still queued had queued twice, on the counted write and then on the locked path, each holding
    the code for several round trips (64 such answers are 1.3% of the hot benchmark's latencies, so at its p99).
    """
    try:
        rules.use_open_check(code=code, user_id=user_id, now=now)
    except ApplicationError:
        return False
    rules.code_not_exhausted_check(code=code)
    return True


def _redeem_locked(*, tenant: Tenant, code: str, user_id: str, actor: Actor, token: str | None, **request) -> _Use:
    """A redeem on the locked rows: the code (and without a token the user's row first), then the write."""
    # With a token the reservation already counts against the user's limit: no user lock, straight to the code's.
    user_limit = None if token else "max_redemptions_per_user"
    found, reservation = _code_locked(tenant=tenant, code=code, user_id=user_id, user_limit=user_limit, token=token)
    book = found.book
    now = timezone.now()
    if token:
        reservation = rules.reservation_redeemable_check(reservation=reservation, code=found, now=now)
    else:
        lifecycle_sql.held_recount(code=found)  # the counters refused: let them count exactly again
    rules.use_open_check(code=found, user_id=user_id, now=now)
    try:
        currency = rules.currency_check(book=book, currency=request["currency"])
        discount = rules.discount_for(book=book, amount=request["amount"], product_id=request["product_id"])
    except ApplicationError:
        if reservation is None:  # the counted rules answer first, as validate (new_use_check) answers
            rules.use_counts_check(code=found, counts=lifecycle_sql.use_counts(code=found, user_id=user_id, now=now))
        raise

    used = _use_taken(found)  # the code as this use leaves it (mirrored: the write below is conditional)
    fields = _redemption_fields(user_id=user_id, actor=actor, now=now, discount=discount, **{**request, "currency": currency})
    event = _redeemed_event(code=used, actor=actor, now=now, fields=fields, reservation=reservation)
    written = lifecycle_sql.redemption_insert(
        code=found, state=used.state, reservation=reservation, redemption=fields, event=event
    )
    if not written.reservation_consumed:
        raise ApplicationError("reservation_not_active", "This reservation is no longer active.", {"code": found.code})
    if written.counts is not None:
        rules.use_counts_check(code=found, counts=written.counts)
    if written.redemption_id is None:
        raise rules.code_exhausted_error(found)
    return _Use(written.redemption_id, used, reservation, fields)


def _redemption_fields(*, user_id: str, actor: Actor, now: object, discount, **request) -> dict:
    """The redemption row's own columns (`currency`: the order's, as rules.currency_check settled it)."""
    return {
        "user_id": user_id,
        "redeemed_at": now,
        "order_ref": request["order_ref"],
        "amount": request["amount"],
        "product_id": request["product_id"],
        "discount": discount,
        "currency": request["currency"],
        "actor_type": actor.kind,
        "actor_id": actor.id,
        "idempotency_key": request["idempotency_key"],
    }


def _redeemed_event(*, code: Code, actor: Actor, now: object, fields: dict, reservation, used: bool = False):
    return events.event_row(
        kind=Event.Kind.REDEEMED,
        actor=actor,
        now=now,
        code=code,
        user_id=fields["user_id"],
        used=used,
        reservation_id=reservation.pk if reservation else None,
        reservation_expires_at=reservation.expires_at if reservation else None,
        data={"redemption": lifecycle_sql.REDEMPTION_ID, "order_ref": fields["order_ref"]},
    )


def _redemption(use: _Use) -> Redemption:
    """The stored redemption as the write statement wrote it (no re-read)."""
    code = use.code
    redemption = Redemption(
        id=use.redemption_id, tenant_id=code.tenant_id, book=code.book, code=code, reservation=use.reservation, **use.fields
    )
    redemption._state.adding = False
    return redemption


def _use_taken(code: Code) -> Code:
    """A copy of the (locked) code with one more use counted: its state becomes redeemed with its last use."""
    used_up = code.max_uses is not None and code.redeemed_count + 1 >= code.max_uses
    used = copy.copy(code)
    used.redeemed_count += 1
    used.state = Code.State.REDEEMED if used_up and code.state != Code.State.VOIDED else code.state
    return used


@transaction.atomic
def redemption_reverse(*, tenant: Tenant, redemption_id: int, actor: Actor, reason: str = "") -> Redemption:
    """Record a refund: the use returns to the code, the redemption row stays with when, why and by whom."""
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
    reversal = {"reversed_at": now, "reversal_reason": reason, "reversed_by_type": actor.kind, "reversed_by_id": actor.id}
    Redemption.objects.filter(pk=redemption.pk).update(**reversal)
    # Both rows are locked: mirror the updates instead of reading them back.
    for name, value in reversal.items():
        setattr(redemption, name, value)
    code.redeemed_count -= 1
    if code.state == Code.State.REDEEMED:
        code.state = Code.State.ASSIGNED if code.user_id else Code.State.FREE
    Code.objects.filter(pk=code.pk).update(redeemed_count=F("redeemed_count") - 1, state=code.state)
    refund = {"redemption": redemption.pk, "reason": reason}
    event_record(book=code.book, code=code, kind=Event.Kind.REVERSED, actor=actor, user_id=redemption.user_id, data=refund)
    book_use_return(code=code, redemption=redemption)  # last: the book's counter lock, held only to the commit
    return redemption
