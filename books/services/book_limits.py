"""The book-wide campaign limits (max_redemptions, budget_amount) in the code lifecycle: the one step reserve,
redeem and reverse each take for a book that has them, as the last thing before they commit.

A book without them pays nothing: each step returns before any statement (the code row, locked by the service,
says whether the book is limited: Code.book_limited). A limited book's allowance (what its limits still allow)
is split over BookAllowance shards. A use takes its share from one free shard with room (the fast path,
lock_objects.book_allowance_take: one UPDATE), so the uses of a big campaign run side by side instead of queuing
on one row through each other's commit. When no free shard has room, the use recounts the book: it locks every
shard, counts the standing redemptions and the active holds afresh (expired and released holds and reversals
stop counting there), checks the limits on that exact usage, and shares out what is left. A refusal raises,
which rolls the whole service back: nothing of the use remains.

Why it is exact: between two recounts the shards' allowance only shrinks by at least what each use adds to the
usage, and a recount sets it from the usage itself, so the allowance never exceeds what the limits leave.
"""

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TypedDict, Unpack

from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from redemptions.models import Redemption

from .. import lock_objects, rules
from ..models import BookAllowance, Code, CouponBook, Reservation


def book_use_hold(*, code: Code) -> None:
    """The reservation just inserted on this code counts against the book's limits while it holds."""
    if code.book_limited:
        _book_use(book_id=code.book_id, new_hold=True)


def book_use_take(*, code: Code, discount: Decimal | None, reservation: Reservation | None) -> None:
    """A new redemption (already inserted, with this discount; the reservation it consumed, if any, already
    consumed) is added to the book's usage."""
    if code.book_limited:
        _book_use(
            book_id=code.book_id,
            redemptions=1,
            discount=discount or Decimal(0),
            consumed_expires_at=reservation.expires_at if reservation is not None else None,
        )


def book_use_return(*, code: Code, redemption: Redemption) -> None:
    """A reversed redemption leaves the book's standing redemptions and discount (it can only lower the usage:
    nothing to check; the next recount gives its room back)."""
    if code.book_limited:
        lock_objects.book_allowance_give_back(book_id=code.book_id, redemptions=-1, discount=-(redemption.discount or Decimal(0)))


class BookUse(TypedDict, total=False):
    """One use at hand, as book_allowance_take and book_allowance_recount take it (see the latter)."""

    redemptions: int
    discount: Decimal
    new_hold: bool
    consumed_expires_at: datetime | None


def _book_use(*, book_id: int, **use: Unpack[BookUse]) -> None:
    """Take one use's share from a free shard, or recount the book and decide on its exact usage."""
    if not lock_objects.book_allowance_take(book_id=book_id, **use):
        book_allowance_recount(book_id=book_id, check=True, **use)


def book_allowance_recount(*, book_id: int, check: bool = False, **use: Unpack[BookUse]) -> None:
    """Lock every shard of the book, count its usage exactly, and share out what its limits leave.

    `redemptions` and `discount` are the use at hand's (this transaction's redemption, which the shards do not
    hold yet; its own new hold or consumed reservation the count sees already), written to shard 0. With
    `check`, a use that does not fit is refused (rules.book_limits_check), on what it adds, as the fast path
    decides: a redemption of a hold the last recount counted adds no use, and only a discount above what the
    hold kept. Without, it rebalances the book after a change of its limits or discount: a limit lowered below
    what was given leaves no room, takes nothing back. Three statements; a use only comes here when no free
    shard had room.
    """
    redemptions, discount = use.get("redemptions", 0), use.get("discount", Decimal(0))
    new_hold, consumed_expires_at = use.get("new_hold", False), use.get("consumed_expires_at")
    now = timezone.now()
    lock_objects.book_allowances_lock(book_id=book_id)
    recount = rules.book_recount(book_id=book_id, now=now)
    usage = replace(
        recount.usage, redemptions=recount.usage.redemptions + redemptions, discount=recount.usage.discount + discount
    )
    if check:
        # A book whose shards were never started (limits set around the services) has no last recount: nothing
        # of its holds was counted on them.
        hold_counted = None not in (consumed_expires_at, recount.last_recount) and consumed_expires_at > recount.last_recount
        rules.book_limits_check(
            book=recount.book,
            usage=usage,
            new_hold=new_hold,
            adds_use=not hold_counted,
            adds_discount=not hold_counted or discount > recount.hold_value,
        )
    hold = rules.hold_per_use(recount.book)
    shares = rules.book_allowance_shares(usage=usage, hold=hold, unit=max(hold, discount))
    table = connection.ops.quote_name(BookAllowance._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} SET
                redemptions = redemptions + CASE WHEN shard = 0 THEN %(redemptions)s ELSE 0 END,
                discount = discount + CASE WHEN shard = 0 THEN %(discount)s ELSE 0 END,
                uses_left = (%(uses)s::integer[])[shard + 1], budget_left = (%(budget)s::numeric[])[shard + 1],
                hold_value = %(hold)s, recounted_at = %(now)s
            WHERE book_id = %(book)s""",
            {
                "book": book_id,
                "redemptions": redemptions,
                "discount": discount,
                "uses": shares.uses,
                "budget": shares.budget,
                "hold": hold,
                "now": now,
            },
        )


def book_counter_start(*, book: CouponBook) -> None:
    """Start (or restart) a book's shards from its standing redemptions, when its limits are switched on.

    book_update has rewritten Code.book_limited on every code of the book in this transaction, which waited for
    every use under way on them: this statement's snapshot holds all of them, and the uses that follow count
    themselves once this commits (book_create: a new book has no codes, nor uses, yet). Shards left from an
    earlier time with limits are replaced: the uses since then were not counted on them.
    """
    totals = Redemption.objects.filter(book=book, reversed_at__isnull=True).aggregate(
        redemptions=Count("pk"), discount=Sum("discount", filter=Q(discount__isnull=False))
    )
    BookAllowance.objects.filter(book=book).delete()
    BookAllowance.objects.bulk_create(
        BookAllowance(
            book=book,
            shard=shard,
            redemptions=totals["redemptions"] if shard == 0 else 0,
            discount=(totals["discount"] or Decimal(0)) if shard == 0 else Decimal(0),
            uses_left=0,
            budget_left=0,
            recounted_at=timezone.now(),
        )
        for shard in range(rules.BOOK_ALLOWANCE_SHARDS)
    )
    book_allowance_recount(book_id=book.pk)


def book_counter_stop(*, book: CouponBook) -> None:
    """Drop a book's shards when its limits are switched off: its uses are no longer counted on them."""
    BookAllowance.objects.filter(book=book).delete()
