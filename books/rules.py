"""Every rule of the code lifecycle, in one place: a book's status, a code's holder and uses, a user's limits, a
reservation's token, and the discount. Services (assign, reserve, redeem) and validate share them, so they never
disagree.

Each check raises ApplicationError with the rule's stable code (USE_RULES lists the codes a new use can answer; the
API's schema imports it); validate catches it and reports the code as its reason. Callers that change data run
these only after taking their row locks (never on data read before them). The checks that count rows take the
counts as arguments: the hot services read them in their write statement, once every lock is held
(books/lifecycle_sql.py explains why there and not earlier), and roll the write back when a check fails.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Q
from psycopg import sql

from core.exceptions import ApplicationError

from .lifecycle_sql import UseCounts, use_counts
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
    "book_redemption_limit_reached",
    "book_budget_exhausted",
)
# The error codes of the order itself (redeem and validate, after the use rules): currency_check, discount_for.
ORDER_RULES = ("product_not_eligible", "currency_mismatch", "order_below_minimum", "order_amount_required")


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


def code_exhausted_error(code: Code) -> ApplicationError:
    return ApplicationError("code_exhausted", "Every use of this code has been redeemed.", {"code": code.code})


def code_not_exhausted_check(*, code: Code) -> None:
    """A use is left at all (redemptions < uses), whatever the reservations: the half of code_use_left_check that
    the code's row alone settles."""
    if code.max_uses is not None and code.redeemed_count >= code.max_uses:
        raise code_exhausted_error(code)


def code_use_left_check(*, code: Code, counts: UseCounts) -> None:
    """A use must be left beyond the other active reservations (redemptions + active holds <= uses)."""
    code_not_exhausted_check(code=code)
    if code.max_uses is None:
        return
    left = code.max_uses - code.redeemed_count
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


def user_code_limit_check(*, book: CouponBook, held: int) -> None:
    """One more code keeps the user within max_codes_per_user (`held`: their codes before it, as
    lifecycle_sql.user_codes_held counts them)."""
    if book.max_codes_per_user is None:
        return
    if held >= book.max_codes_per_user:
        raise ApplicationError(
            "user_code_limit_reached",
            f"This user holds {held} code(s) of this book, its limit.",
            {"limit": book.max_codes_per_user},
        )


def use_open_check(*, code: Code, user_id: str, now: datetime) -> None:
    """The code is usable by this user now: not voided, theirs (if the book requires it), its book open. This is
    all a use the user already holds (a reservation) needs: it counted against the limits when taken."""
    code_holder_check(book=code.book, code=code, user_id=user_id)
    book_open_check(book=code.book, code=code, now=now)


def use_counts_check(*, code: Code, counts: UseCounts) -> None:
    """The counted rules of a new use: a use left beyond the active reservations, and the user's limit.

    The services read the counts in their write statement (lifecycle_sql: after every lock is held) and run
    this before they commit."""
    code_use_left_check(code=code, counts=counts)
    user_redemption_limit_check(book=code.book, counts=counts)


def new_use_check(*, code: Code, user_id: str, now: datetime) -> None:
    """Every rule for taking a new use of a code, counts read here (validate's dry run)."""
    use_open_check(code=code, user_id=user_id, now=now)
    if code.max_uses is None and code.book.max_redemptions_per_user is None:
        return  # nothing to count: unlimited uses, no per-user limit
    use_counts_check(code=code, counts=use_counts(code=code, user_id=user_id, now=now))


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
    """The discount for an order line, checking product eligibility and the minimum order; None when no amount is
    known (percent).

    An order without an amount is refused (order_amount_required) where the book needs it: a minimum cannot be
    checked without it, and a budgeted percent book cannot count a discount it cannot compute. Refusing is the
    choice over "no discount": a checkout that forgot the amount learns it at once instead of granting nothing.
    """
    if book.product_ids and product_id not in {str(p) for p in book.product_ids}:
        raise ApplicationError(
            "product_not_eligible",
            "This coupon applies only to certain products." + ("" if product_id else " Send the product_id."),
            {"product_id": product_id},
        )
    percent = book.discount_type == CouponBook.DiscountType.PERCENT
    if amount is None and (book.min_order_amount is not None or (percent and book.budget_amount is not None)):
        why = "a minimum order amount" if book.min_order_amount is not None else "a discount budget"
        raise ApplicationError(
            "order_amount_required", f"This coupon book has {why}: send the order's amount.", {"field": "amount"}
        )
    if book.min_order_amount is not None and amount < book.min_order_amount:
        raise ApplicationError(
            "order_below_minimum",
            f"This coupon applies to orders of at least {book.min_order_amount}.",
            {"min_order_amount": str(book.min_order_amount), "amount": str(amount)},
        )
    if amount is None:
        return book.discount_value if not percent else None
    if percent:
        discount = (amount * book.discount_value / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP)
        return discount if book.max_discount_amount is None else min(discount, book.max_discount_amount)
    return min(book.discount_value, amount).quantize(CENT)


# --- Book-wide limits: max_redemptions and budget_amount -----------------------------------------------------


def hold_per_use(book: CouponBook) -> Decimal:
    """What an active reservation holds of the book's budget: the most its redemption can give.

    A lock carries no amount, so a hold is valued at the discount's ceiling: a fixed book's discount_value, a
    percent book's max_discount_amount. An uncapped percent book has no ceiling: its holds take nothing, and
    its budget is checked at redeem with the real discount, so a checkout holding a lock may still be refused
    book_budget_exhausted there (the one case where a lock does not guarantee the budget). Holds are valued at
    the book's settings as the service read them, the same settings its redeem's discount comes from.
    """
    if book.discount_type == CouponBook.DiscountType.FIXED:
        return book.discount_value
    return book.max_discount_amount if book.max_discount_amount is not None else Decimal(0)


@dataclass(frozen=True)
class BookUsage:
    """What counts against a book's limits (its standing redemptions and discount, its active holds) and the
    limits themselves, as one statement read them."""

    redemptions: int
    discount: Decimal
    held: int
    max_redemptions: int | None
    budget_amount: Decimal | None

    def plus_redemption(self, discount: Decimal | None) -> "BookUsage":
        """This usage with one more redemption (what validate asks: would it still fit?)."""
        return replace(self, redemptions=self.redemptions + 1, discount=self.discount + (discount or 0))


def book_usage_query(*, book_id: int, now: datetime, without_reservation: int | None = None, recount: bool = False) -> str:
    """The statement behind book_usage, its values in it (the counter: the view that sums the book's shards);
    with `recount`, also what book_recount reads: the book's discount settings and the shards' last recount."""
    from .models import BookAllowance, BookCounter

    recounted = sql.SQL(
        """, b.discount_type, b.discount_value, b.max_discount_amount, b.currency,
        (SELECT MIN(recounted_at) FROM {shards} WHERE book_id = b.id), (SELECT MIN(hold_value) FROM {shards} WHERE book_id = b.id)"""
    ).format(shards=sql.Identifier(BookAllowance._meta.db_table))
    query = sql.SQL(
        """SELECT COALESCE(c.redemptions, 0), COALESCE(c.discount, 0),
        (SELECT COUNT(*) FROM {reservations} WHERE book_id = b.id AND status = {active} AND expires_at > {now} AND id <> {own}),
        b.max_redemptions, b.budget_amount{recounted}
        FROM {books} b LEFT JOIN {counters} c ON c.book_id = b.id WHERE b.id = {book}"""
    ).format(
        recounted=recounted if recount else sql.SQL(""),
        reservations=sql.Identifier(Reservation._meta.db_table),
        books=sql.Identifier(CouponBook._meta.db_table),
        counters=sql.Identifier(BookCounter._meta.db_table),
        active=sql.Literal(Reservation.Status.ACTIVE.value),
        now=sql.Literal(now),
        own=sql.Literal(without_reservation or 0),
        book=sql.Literal(book_id),
    )
    connection.ensure_connection()
    return query.as_string(connection.connection)


def book_usage(*, book_id: int, now: datetime, without_reservation: int | None = None) -> BookUsage:
    """The book's limits, its counter and its active reservations (lazy expiry), in ONE statement, one snapshot,
    without a lock: what validate answers and the book page shows (the services decide under the shards' locks:
    books/services/book_limits.py). `without_reservation` leaves out the caller's own hold (validate's user holding
    a lock). The partial index reservation_user_active_idx serves the count.
    """
    with connection.cursor() as cursor:
        cursor.execute(book_usage_query(book_id=book_id, now=now, without_reservation=without_reservation))
        return BookUsage(*cursor.fetchone())


# A limited book's allowance is split over this many BookAllowance shards: 8 concurrent redeemers (the campaign
# bench) rarely pick the same one, and a fast-path pick scans only these rows.
BOOK_ALLOWANCE_SHARDS = 16
# A recount leaves each shard room for at least this many uses: near the end of a campaign what is left goes to
# fewer shards, so a use seldom finds every shard too small while the book as a whole still has room.
USES_PER_SHARD_AT_LEAST = 4


@dataclass(frozen=True)
class BookRecount:
    """What a recount reads: the book's usage, the book as its limits and discount now stand, and how the last
    recount left the shards (its `now`: the holds expiring after it were counted; a hold's value then)."""

    usage: BookUsage
    book: CouponBook
    last_recount: datetime
    hold_value: Decimal


def book_recount(*, book_id: int, now: datetime) -> BookRecount:
    """The book's usage (its shards' standing redemptions and discount, its active holds), its limits and
    discount settings (what values a hold), and the shards' last recount, in one statement: sent once every shard
    of the book is locked, so its snapshot holds every use taken on them and the latest change of the book's
    settings (a change recounts under the same locks: book_limits.book_allowance_recount)."""
    with connection.cursor() as cursor:
        cursor.execute(book_usage_query(book_id=book_id, now=now, recount=True))
        row = cursor.fetchone()
    usage = BookUsage(int(row[0]), row[1], row[2], row[3], row[4])
    book = CouponBook(
        pk=book_id, max_redemptions=row[3], budget_amount=row[4], discount_type=row[5], discount_value=row[6],
        max_discount_amount=row[7], currency=row[8],
    )  # fmt: skip
    return BookRecount(usage=usage, book=book, last_recount=row[9], hold_value=row[10])


@dataclass(frozen=True)
class AllowanceShares:
    """What a recount gives each shard: uses and budget (None: the book has no such limit)."""

    uses: list[int] | None
    budget: list[Decimal] | None


def book_allowance_shares(*, usage: BookUsage, hold: Decimal, unit: Decimal) -> AllowanceShares:
    """Share out what the limits still allow after `usage` (holds valued at `hold` each) over the shards.

    Exact in sum (whole uses, whole cents), never more than is left; a limit already passed (lowered below what
    was given) leaves nothing. What is left goes to as many shards as have room for USES_PER_SHARD_AT_LEAST uses
    (of `unit` each for the budget: the use at hand's discount or a hold's value), the others get nothing.
    """
    spread = BOOK_ALLOWANCE_SHARDS
    uses_left = budget_cents = None
    if usage.max_redemptions is not None:
        uses_left = max(usage.max_redemptions - usage.redemptions - usage.held, 0)
        spread = min(spread, max(uses_left // USES_PER_SHARD_AT_LEAST, 1))
    if usage.budget_amount is not None:
        budget_cents = max(int((usage.budget_amount - usage.discount - usage.held * hold) / CENT), 0)
        unit_cents = int(unit / CENT)
        if unit_cents > 0:
            spread = min(spread, max(budget_cents // (unit_cents * USES_PER_SHARD_AT_LEAST), 1))

    def split(total: int) -> list[int]:
        each, extra = divmod(total, spread)
        return [each + (n < extra) if n < spread else 0 for n in range(BOOK_ALLOWANCE_SHARDS)]

    return AllowanceShares(
        uses=None if uses_left is None else split(uses_left),
        budget=None if budget_cents is None else [cents * CENT for cents in split(budget_cents)],
    )


def book_limits_check(
    *, book: CouponBook, usage: BookUsage, new_hold: bool = False, adds_use: bool = True, adds_discount: bool = True
) -> None:
    """The book's usage, this use included, is within its limits (as `usage` read them).

    `usage` counts the use being taken: a redemption in `redemptions` and its discount in `discount`, or (with
    new_hold) a new reservation in `held`. A new hold of an uncapped percent book (which holds nothing) is still
    refused once nothing of the budget is left. A redemption of a hold that was counted adds no use (adds_use
    False), nor any discount when it gives at most what its hold kept (adds_discount False): it is checked only
    on what it adds, so a limit lowered below what was given and held takes nothing back from a holder.
    """
    limit, budget = usage.max_redemptions, usage.budget_amount
    if limit is not None and adds_use and usage.redemptions + usage.held > limit:
        raise ApplicationError(
            "book_redemption_limit_reached",
            f"This coupon book has reached its limit of {limit} redemption(s).",
            {"limit": limit, "redeemed": usage.redemptions, "reserved": usage.held - int(new_hold)},
        )
    if budget is not None and adds_discount:
        hold = hold_per_use(book)
        used = usage.discount + usage.held * hold
        if used > budget or (new_hold and not hold and used >= budget):
            raise ApplicationError(
                "book_budget_exhausted",
                f"This coupon book has given its budget of {budget} {book.currency}.",
                {
                    "budget_amount": str(budget),
                    "currency": book.currency,
                    "discount_given": str(usage.discount),
                    "reserved": str((usage.held - int(new_hold)) * hold),
                },
            )
