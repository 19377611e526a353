"""The book-wide campaign limits (max_redemptions, budget_amount) in the code lifecycle: the one step reserve,
redeem and reverse each take for a book that has them, as the last thing before they commit.

A book without them pays nothing: each step returns before any statement (the code row, locked by the service,
says whether the book is limited: Code.book_limited). A limited book's step locks its counter row last
(lock_objects.book_counter_add: one UPDATE) and re-counts under that lock (rules.book_usage_query: one SELECT,
sent with the UPDATE in one round trip), so every use of the book is decided on what all the earlier ones
committed, and the lock is held only for that round trip and the commit. A refusal raises, which rolls the whole
service back: nothing of the use remains.
"""

from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from redemptions.models import Redemption

from .. import lock_objects, rules
from ..models import BookCounter, Code, CouponBook


def book_use_hold(*, code: Code) -> None:
    """The reservation just inserted on this code counts against the book's limits while it holds."""
    if not code.book_limited:
        return
    usage = lock_objects.book_counter_add(
        book_id=code.book_id, then=rules.book_usage_query(book_id=code.book_id, now=timezone.now())
    )
    rules.book_limits_check(book=code.book, usage=rules.BookUsage(*usage), new_hold=True)


def book_use_take(*, code: Code, discount: Decimal | None) -> None:
    """A new redemption (already inserted, with this discount; its reservation, if any, already consumed) is added
    to the counter."""
    if not code.book_limited:
        return
    usage = lock_objects.book_counter_add(
        book_id=code.book_id,
        redemptions=1,
        discount=discount or Decimal(0),
        then=rules.book_usage_query(book_id=code.book_id, now=timezone.now()),
    )
    rules.book_limits_check(book=code.book, usage=rules.BookUsage(*usage))


def book_use_return(*, code: Code, redemption: Redemption) -> None:
    """A reversed redemption gives its share back (it can only lower the usage: nothing to check)."""
    if not code.book_limited:
        return
    lock_objects.book_counter_add(book_id=code.book_id, redemptions=-1, discount=-(redemption.discount or Decimal(0)))


def book_counter_start(*, book: CouponBook) -> None:
    """Start (or restart) a book's counter from its standing redemptions, when its limits are switched on.

    book_update has rewritten Code.book_limited on every code of the book in this transaction, which waited for
    every use under way on them: this statement's snapshot holds all of them, and the uses that follow count
    themselves once this commits (book_create: a new book has no codes, nor uses, yet).
    """
    totals = Redemption.objects.filter(book=book, reversed_at__isnull=True).aggregate(
        redemptions=Count("pk"), discount=Sum("discount", filter=Q(discount__isnull=False))
    )
    BookCounter.objects.update_or_create(
        book=book, defaults={"redemptions": totals["redemptions"], "discount": totals["discount"] or Decimal(0)}
    )
