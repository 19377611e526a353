"""Every rule of the code lifecycle, in one place: a book's status, a code's holder and uses, a user's limits, a
reservation's token, and the discount. Services (assign, reserve, redeem) and validate share them, so they never
disagree.

Each check raises ApplicationError with the rule's stable code (USE_RULES lists the codes a new use can answer; the
API's schema imports it); validate catches it and reports the code as its reason. Callers that change data run
these only after taking their row locks (never on data read before them).
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Q

from core.exceptions import ApplicationError

from .models import Code, CouponBook, Reservation

CENT = Decimal("0.01")

# The error codes a new use of a code can answer (reserve, redeem without a token, validate).
USE_RULES = (
    "code_not_assigned_to_user",
    "code_voided",
    "book_not_active",
    "book_not_started",
    "book_expired",
    "book_archived",
    "code_expired",
    "code_exhausted",
    "code_locked",
    "user_redemption_limit_reached",
)


def active_reservations(*, now: datetime) -> Q:
    """Reservations that still count: active and not past their time (lazy expiry; the task only tidies up)."""
    return Q(status=Reservation.Status.ACTIVE, expires_at__gt=now)


def _book_status_check(*, book: CouponBook) -> None:
    if book.status == CouponBook.Status.ARCHIVED:
        raise ApplicationError("book_archived", "This coupon book is archived.", {"book": book.pk})
    if book.status != CouponBook.Status.ACTIVE:
        raise ApplicationError(
            "book_not_active", f"This coupon book is {book.status}, not active.", {"book": book.pk, "status": book.status}
        )


def _book_ended_error(book: CouponBook) -> ApplicationError:
    return ApplicationError("book_expired", "This coupon book has ended.", {"valid_until": book.valid_until.isoformat()})


def book_open_check(*, book: CouponBook, code: Code, now: datetime) -> None:
    """The book can be used now: active, started, and neither it nor the code (whose expiry wins) has ended."""
    _book_status_check(book=book)
    if book.valid_from and now < book.valid_from:
        raise ApplicationError(
            "book_not_started", "This coupon book is not valid yet.", {"valid_from": book.valid_from.isoformat()}
        )
    if code.expires_at is not None:
        if now >= code.expires_at:
            raise ApplicationError("code_expired", "This code has expired.", {"expires_at": code.expires_at.isoformat()})
    elif book.valid_until and now >= book.valid_until:
        raise _book_ended_error(book)


# The error codes book_assignable_check can answer (the API lists them on the assign and distribute operations).
BOOK_ASSIGNABLE_RULES = ("book_not_active", "book_archived", "book_expired")


def book_assignable_check(*, book: CouponBook, now: datetime) -> None:
    """The book can hand out codes now: active and not ended."""
    _book_status_check(book=book)
    # Codes may be handed out before valid_from ("your code for next week's sale"), not after the end.
    if book.valid_until and now >= book.valid_until:
        raise _book_ended_error(book)


def codes_addable_check(*, status: str, book_id: int) -> None:
    """Codes can be added (generated, uploaded) to a book in any status but archived."""
    if status == CouponBook.Status.ARCHIVED:
        raise ApplicationError("book_archived", "Codes cannot be added to an archived book.", {"book": book_id})


def code_holder_check(*, book: CouponBook, code: Code, user_id: str) -> None:
    if code.state == Code.State.VOIDED:
        raise ApplicationError("code_voided", "This code has been voided.", {"code": code.code})
    if book.requires_assignment and code.user_id != user_id:
        raise ApplicationError(
            "code_not_assigned_to_user", "This code is not assigned to this user.", {"code": code.code, "user_id": user_id}
        )


@dataclass(frozen=True)
class UseCounts:
    """What the use rules count, read together (see use_counts)."""

    code_held: int  # the code's active reservations
    user_redeemed: int  # the user's standing redemptions in the book
    user_held: int  # the user's active reservations in the book


def use_counts(*, code: Code, user_id: str, now: datetime) -> UseCounts:
    """The counts behind "a use left" and the per-user redemption limit, in ONE statement, so in one snapshot.

    One snapshot matters: a redeem with a token (which takes no user lock) turns a hold into a redemption in one
    commit, and separate counts could each miss it, letting the user past the limit
    (books/tests/test_concurrency.py reproduces it). Written as SQL because the ORM form (Subquery annotations)
    cost more Python to compile than the query takes to run (bench/profile_cycle.py, README "Performance");
    the partial indexes reservation_code_active_idx, redemption_user_idx and reservation_user_active_idx serve it.
    """
    from redemptions.models import Redemption

    reservations, active = Reservation._meta.db_table, Reservation.Status.ACTIVE
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT
                (SELECT COUNT(*) FROM {reservations} WHERE code_id = %s AND status = %s AND expires_at > %s),
                (SELECT COUNT(*) FROM {Redemption._meta.db_table}
                 WHERE book_id = %s AND user_id = %s AND reversed_at IS NULL),
                (SELECT COUNT(*) FROM {reservations} WHERE book_id = %s AND user_id = %s AND status = %s AND expires_at > %s)""",
            [code.pk, active, now, code.book_id, user_id, code.book_id, user_id, active, now],
        )
        return UseCounts(*cursor.fetchone())


def code_exhausted_error(code: Code) -> ApplicationError:
    return ApplicationError("code_exhausted", "Every use of this code has been redeemed.", {"code": code.code})


def code_use_left_check(*, code: Code, counts: UseCounts) -> None:
    """A use must be left beyond the other active reservations (redemptions + active holds <= uses)."""
    if code.max_uses is None:
        return
    left = code.max_uses - code.redeemed_count
    if left <= 0:
        raise code_exhausted_error(code)
    if counts.code_held >= left:
        raise ApplicationError(
            "code_locked", "The uses left on this code are reserved by a checkout in progress.", {"code": code.code}
        )


def user_redemption_limit_check(*, book: CouponBook, counts: UseCounts) -> None:
    """The user's standing redemptions plus active holds in the book stay under max_redemptions_per_user."""
    if book.max_redemptions_per_user is None:
        return
    if counts.user_redeemed + counts.user_held >= book.max_redemptions_per_user:
        raise ApplicationError(
            "user_redemption_limit_reached",
            f"This user has used this book {book.max_redemptions_per_user} time(s), its limit.",
            {"limit": book.max_redemptions_per_user, "redeemed": counts.user_redeemed, "reserved": counts.user_held},
        )


def user_code_limit_check(*, book: CouponBook, user_id: str) -> None:
    if book.max_codes_per_user is None:
        return
    held = Code.objects.filter(book=book, user_id=user_id).exclude(state=Code.State.VOIDED).count()
    if held >= book.max_codes_per_user:
        raise ApplicationError(
            "user_code_limit_reached",
            f"This user holds {held} code(s) of this book, its limit.",
            {"limit": book.max_codes_per_user},
        )


def new_use_check(*, code: Code, user_id: str, now: datetime) -> None:
    """Every rule for taking a new use of a code (reserve, or redeem without a token). Run under the row locks."""
    book = code.book
    code_holder_check(book=book, code=code, user_id=user_id)
    book_open_check(book=book, code=code, now=now)
    if code.max_uses is None and book.max_redemptions_per_user is None:
        return  # nothing to count: unlimited uses, no per-user limit
    counts = use_counts(code=code, user_id=user_id, now=now)
    code_use_left_check(code=code, counts=counts)
    user_redemption_limit_check(book=book, counts=counts)


def held_use_check(*, code: Code, user_id: str, now: datetime) -> None:
    """The rules for a use the user already holds (a reservation): it counted against the limits when taken."""
    code_holder_check(book=code.book, code=code, user_id=user_id)
    book_open_check(book=code.book, code=code, now=now)


def _reservation_found_check(*, reservation: Reservation | None, code: Code) -> Reservation:
    if reservation is None:
        raise ApplicationError(
            "reservation_not_found", "No reservation of this user on this code has this token.", {"code": code.code}
        )
    return reservation


def reservation_releasable_check(*, reservation: Reservation | None, code: Code) -> Reservation:
    """The reservation an unlock's token names exists and was not redeemed (released or expired: a no-op)."""
    reservation = _reservation_found_check(reservation=reservation, code=code)
    if reservation.status == Reservation.Status.CONSUMED:
        raise ApplicationError("reservation_not_active", "This reservation was already redeemed.", {"code": code.code})
    return reservation


def reservation_redeemable_check(*, reservation: Reservation | None, code: Code, now: datetime) -> Reservation:
    """The reservation a redeem's token names exists, is active and has not run out."""
    reservation = _reservation_found_check(reservation=reservation, code=code)
    if reservation.status != Reservation.Status.ACTIVE:
        raise ApplicationError("reservation_not_active", f"This reservation is {reservation.status}.", {"code": code.code})
    if reservation.expires_at <= now:
        raise ApplicationError("reservation_expired", "This reservation has expired; lock the code again.", {"code": code.code})
    return reservation


# The error codes code_assignable_check can answer (the API lists them on code_assign).
CODE_ASSIGNABLE_RULES = ("code_already_assigned", "code_not_assignable", "code_voided")


def code_assignable_check(*, code: Code) -> None:
    """A named code can be given to a user only while free (not voided, not someone else's)."""
    if code.state == Code.State.VOIDED:
        raise ApplicationError("code_voided", "This code has been voided.", {"code": code.code})
    if code.user_id is not None:
        raise ApplicationError("code_already_assigned", "This code is assigned to another user.", {"code": code.code})
    if code.state != Code.State.FREE:
        raise ApplicationError("code_not_assignable", f"This code is {code.state} and cannot be assigned.", {"code": code.code})


def code_unassignable_check(*, code: Code) -> None:
    """Only an assigned code never redeemed goes back to the free pool."""
    if code.state != Code.State.ASSIGNED or code.redeemed_count:
        raise ApplicationError(
            "code_not_assignable", "Only an assigned, never redeemed code can be unassigned.", {"code": code.code}
        )


def currency_check(*, book: CouponBook, currency: str) -> str:
    """The currency a redemption is in, and its discount: the order's. A book with a currency of its own (a fixed
    discount, a budget) gives money in that currency only, so it refuses another. Without a currency sent (no
    amount), the book's."""
    if book.currency and currency and currency != book.currency:
        raise ApplicationError(
            "currency_mismatch",
            f"This coupon book's discount is in {book.currency}; the order is in {currency}.",
            {"currency": currency, "book_currency": book.currency},
        )
    return currency or book.currency


def discount_for(*, book: CouponBook, amount: Decimal | None, product_id: str) -> Decimal | None:
    """The discount for an order line, checking product eligibility; None when no amount is known (percent)."""
    if book.product_ids and product_id not in {str(p) for p in book.product_ids}:
        raise ApplicationError(
            "product_not_eligible",
            "This coupon applies only to certain products." + ("" if product_id else " Send the product_id."),
            {"product_id": product_id},
        )
    if amount is None:
        return book.discount_value if book.discount_type == CouponBook.DiscountType.FIXED else None
    if book.discount_type == CouponBook.DiscountType.PERCENT:
        return (amount * book.discount_value / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP)
    return min(book.discount_value, amount).quantize(CENT)
