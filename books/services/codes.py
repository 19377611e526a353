"""The code lifecycle: assign (random or specific), lock, unlock, void, unassign, and reservation expiry.

Each service is one transaction: it takes its row locks through lock_objects (in the documented order), re-reads
and re-checks every rule under those locks, changes rows with conditional updates, and records its event.
"""

import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError, id_detail
from tenants.models import Tenant

from .. import lock_objects, rules
from ..inputs import clean_text, clean_ttl, clean_user_id, is_valid_code, normalize_code
from ..models import Code, CouponBook, Event, Reservation
from .events import event_record

SHUFFLE_MAX = 2**63 - 1


def new_shuffle_key() -> int:
    return secrets.randbits(63)


def book_for_update_get(*, tenant: Tenant, book_id: object) -> CouponBook:
    """The tenant's book (not locked: book rows change rarely, and the rules re-read it under the code lock)."""
    try:
        return CouponBook.objects.get(tenant=tenant, pk=int(book_id))
    except (CouponBook.DoesNotExist, TypeError, ValueError):
        raise ApplicationError("book_not_found", "No such coupon book.", {"book": id_detail(book_id)}) from None


def code_find(*, tenant: Tenant, code: object, locked: bool = False) -> Code:
    """The tenant's code by its string (normalised); another tenant's code is simply not found.

    locked=True takes the code's row lock in the same statement: for services that lock no user row first.
    """
    value = normalize_code(code)
    found = None
    if is_valid_code(value):
        codes = lock_objects.code_lock_qs() if locked else Code.objects.select_related("book")
        found = codes.filter(tenant=tenant, code=value).first()
    if found is None:
        raise ApplicationError("code_not_found", "No such code.", {"code": value[:64]})
    return found


def code_row_lock(code: Code) -> Code:
    """The same code row, locked, with its book: every decision after this reads only locked data."""
    return lock_objects.code_lock_qs().get(pk=code.pk)


def book_user_lock_if_limited(*, book: CouponBook, user_id: str, limit: int | None) -> None:
    # The per-user row lock only matters when a per-user limit applies; without one, skipping it saves a
    # round trip and lets one user's concurrent claims run in parallel.
    if limit is not None:
        lock_objects.book_user_lock(book=book, user_id=user_id)


@transaction.atomic
def code_assign_random(*, tenant: Tenant, book_id: object, user_id: object, actor: Actor) -> Code:
    """Give the user a free code of the book, chosen at random; N concurrent callers get N distinct codes."""
    user_id = clean_user_id(user_id)
    book = book_for_update_get(tenant=tenant, book_id=book_id)
    now = timezone.now()
    rules.book_assignable_check(book=book, now=now)
    book_user_lock_if_limited(book=book, user_id=user_id, limit=book.max_codes_per_user)
    rules.user_code_limit_check(book=book, user_id=user_id)

    # Start the walk at a random point of the shuffle order and wrap around: each call picks anew at random, and
    # concurrent callers spread over the index instead of all meeting at its first row.
    start = new_shuffle_key()
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
    found = code_find(tenant=tenant, code=code)
    book = found.book
    if found.user_id == user_id and found.state != Code.State.VOIDED:
        return found, False
    book_user_lock_if_limited(book=book, user_id=user_id, limit=book.max_codes_per_user)
    found = code_row_lock(found)
    book = found.book
    if found.user_id == user_id and found.state != Code.State.VOIDED:
        return found, False
    if found.state == Code.State.VOIDED:
        raise ApplicationError("code_voided", "This code has been voided.", {"code": found.code})
    if found.user_id is not None:
        raise ApplicationError("code_already_assigned", "This code is assigned to another user.", {"code": found.code})
    if found.state != Code.State.FREE:
        raise ApplicationError("code_not_assignable", f"This code is {found.state} and cannot be assigned.", {"code": found.code})
    now = timezone.now()
    rules.book_assignable_check(book=book, now=now)
    rules.user_code_limit_check(book=book, user_id=user_id)
    Code.objects.filter(pk=found.pk, state=Code.State.FREE).update(state=Code.State.ASSIGNED, user_id=user_id, assigned_at=now)
    found.refresh_from_db()
    event_record(book=book, code=found, kind=Event.Kind.ASSIGNED, actor=actor, user_id=user_id)
    return found, True


@transaction.atomic
def code_lock(*, tenant: Tenant, code: object, user_id: object, actor: Actor, ttl_seconds: object = None) -> Reservation:
    """Hold one use of the code for the user until the returned reservation's expires_at."""
    user_id = clean_user_id(user_id)
    found = code_find(tenant=tenant, code=code)
    ttl = clean_ttl(ttl_seconds, default=found.book.lock_ttl_seconds)
    book_user_lock_if_limited(book=found.book, user_id=user_id, limit=found.book.max_redemptions_per_user)
    found = code_row_lock(found)
    now = timezone.now()
    reservation_rules_check(code=found, user_id=user_id, now=now)
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


def reservation_rules_check(*, code: Code, user_id: str, now: datetime) -> None:
    """Every rule for taking a new use of a code (lock, or redeem without a token). Run under the locks."""
    book = code.book
    rules.code_holder_check(book=book, code=code, user_id=user_id)
    rules.book_open_check(book=book, code=code, now=now)
    if code.max_uses is None and book.max_redemptions_per_user is None:
        return  # nothing to count: unlimited uses, no per-user limit
    counts = rules.use_counts(code=code, user_id=user_id, now=now)
    rules.code_use_left_check(code=code, counts=counts)
    rules.user_redemption_limit_check(book=book, counts=counts)


@transaction.atomic
def code_unlock(*, tenant: Tenant, code: object, user_id: object, actor: Actor, token: object = None) -> int:
    """Release the user's reservation on the code (the one with this token, or all of theirs without one).

    Returns how many reservations were released. Releasing one that is already released or expired is a no-op
    (the caller's wish holds); a token that was consumed by a redemption is refused.
    """
    user_id = clean_user_id(user_id)
    token = clean_text(token, field="token", max_length=64)
    found = code_find(tenant=tenant, code=code, locked=True)
    held = lock_objects.reservation_lock_qs().filter(code=found, user_id=user_id)
    if token:
        reservation = held.filter(token=token).first()
        if reservation is None:
            raise ApplicationError(
                "reservation_not_found", "No reservation of this user on this code has this token.", {"code": found.code}
            )
        if reservation.status == Reservation.Status.CONSUMED:
            raise ApplicationError("reservation_not_active", "This reservation was already redeemed.", {"code": found.code})
        held = held.filter(pk=reservation.pk)
    now = timezone.now()
    released = 0
    for reservation in held.filter(status=Reservation.Status.ACTIVE):
        if reservation.expires_at <= now:
            _reservation_mark_expired(reservation=reservation, now=now)
            continue
        Reservation.objects.filter(pk=reservation.pk, status=Reservation.Status.ACTIVE).update(
            status=Reservation.Status.RELEASED, ended_at=now
        )
        event_record(book=found.book, code=found, kind=Event.Kind.UNLOCKED, actor=actor, user_id=user_id, reservation=reservation)
        released += 1
    return released


@transaction.atomic
def code_void(*, tenant: Tenant, code: object, actor: Actor, reason: object = "") -> Code:
    """Withdraw a code for good (a leaked code, say): its reservations end; its past redemptions stay."""
    reason = clean_text(reason, field="reason", max_length=1000)
    found = code_find(tenant=tenant, code=code, locked=True)
    if found.state == Code.State.VOIDED:
        return found
    now = timezone.now()
    Reservation.objects.filter(code=found, status=Reservation.Status.ACTIVE).update(
        status=Reservation.Status.RELEASED, ended_at=now
    )
    Code.objects.filter(pk=found.pk).update(state=Code.State.VOIDED)
    found.state = Code.State.VOIDED
    event_record(book=found.book, code=found, kind=Event.Kind.VOIDED, actor=actor, user_id=found.user_id, data={"reason": reason})
    return found


@transaction.atomic
def code_unassign(*, tenant: Tenant, code: object, actor: Actor) -> Code:
    """Take an assigned, unused code back into the book's free pool (its reservations end)."""
    found = code_find(tenant=tenant, code=code, locked=True)
    if found.state != Code.State.ASSIGNED or found.redeemed_count:
        raise ApplicationError(
            "code_not_assignable", "Only an assigned, never redeemed code can be unassigned.", {"code": found.code}
        )
    now = timezone.now()
    Reservation.objects.filter(code=found, status=Reservation.Status.ACTIVE).update(
        status=Reservation.Status.RELEASED, ended_at=now
    )
    previous = found.user_id
    Code.objects.filter(pk=found.pk).update(state=Code.State.FREE, user_id=None, assigned_at=None)
    found.refresh_from_db()
    event_record(book=found.book, code=found, kind=Event.Kind.UNASSIGNED, actor=actor, user_id=previous)
    return found


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
    found = code_find(tenant=tenant, code=code, locked=True)
    now = timezone.now()
    released = 0
    for reservation in lock_objects.reservation_lock_qs().filter(code=found, status=Reservation.Status.ACTIVE):
        if reservation.expires_at <= now:
            _reservation_mark_expired(reservation=reservation, now=now)
            continue
        Reservation.objects.filter(pk=reservation.pk, status=Reservation.Status.ACTIVE).update(
            status=Reservation.Status.RELEASED, ended_at=now
        )
        event_record(
            book=found.book,
            code=found,
            kind=Event.Kind.UNLOCKED,
            actor=actor,
            user_id=reservation.user_id,
            reservation=reservation,
            data={"released_by_staff": True},
        )
        released += 1
    return released
