"""Every row lock the coupon services take, in one place (after Saleor's giftcard/lock_objects.py).

Lock order, always: BookUser (the user's standing in a book) -> Code -> Reservation / Redemption -> BookAllowance
(a shard of a book's campaign limits, only for a book with max_redemptions or budget_amount). Every service that
takes more than one of these takes them in this order, so two transactions can never each hold the lock the other
waits for (no deadlock). Every use of a limited book takes a shard, so shards come last: taken just before the
transaction commits, one is held for one round trip and the commit, not for the whole redeem; a use holds one
shard, picked with SKIP LOCKED, and only a recount holds them all (taken in id order). Locks are row locks
held to the end of the service's transaction. A service that takes many rows of one kind takes them in one fixed order: a distribution locks its users' BookUser rows sorted
by user id, all of them before any code (book_users_lock), and claims codes only with SKIP LOCKED.

Every lock is FOR NO KEY UPDATE (no_key=True), the lock PostgreSQL itself takes for an UPDATE that leaves the key
alone, which is all these services ever do to a locked row. A plain FOR UPDATE would also block the FOR KEY SHARE
lock that every foreign-key check takes on the referenced row, so inserting an event, reservation or redemption
that points at a locked code or book would wait for that lock, against the order above: the expiry task, holding a
reservation and inserting its event, waited for the code held by a redeem that waited for that very reservation,
and PostgreSQL broke the deadlock by failing one of them (books/tests/test_concurrency.py shows it).

The hot services (assign at random, reserve, redeem) take the same locks, in the same order, through the SQL of
books/lifecycle_sql.py: one statement locks the user's row and then the code (test_lifecycle_sql checks that the
code is not held while the user's row is awaited).
"""

from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet

from .models import BookAllowance, BookUser, Code, CouponBook, Reservation


def book_user_lock(*, book: CouponBook, user_id: str) -> None:
    """Lock (creating it first if needed) the row that serialises one user's claims in one book.

    One statement, INSERT ... ON CONFLICT DO UPDATE: PostgreSQL locks the row it inserts or updates until the
    transaction ends, and a concurrent first claim of the same user waits on the unique index, then updates (and
    so waits for) the same row. It spares the SELECT ... FOR UPDATE that would otherwise follow. No foreign key
    points at this row, so its lock strength cannot collide with a key-share check.
    """
    BookUser.objects.bulk_create(
        [BookUser(book=book, user_id=user_id)],
        update_conflicts=True,
        unique_fields=["book", "user_id"],
        update_fields=["user_id"],
    )


def book_user_lock_if_limited(*, book: CouponBook, user_id: str, limit: int | None) -> None:
    """book_user_lock, only when a per-user limit applies.

    Without a limit, skipping it saves a round trip and lets one user's concurrent claims run in parallel.
    """
    if limit is not None:
        book_user_lock(book=book, user_id=user_id)


def book_users_lock(*, book: CouponBook, user_ids: list[str], batch_size: int) -> None:
    """Lock (creating them if needed) the BookUser rows of many users at once, as book_user_lock does for one.

    Distribution (books/services/distribution.py) takes these before any code. `user_ids` must be sorted: the
    INSERT takes its rows' locks in the order of its input (WITH ORDINALITY ... ORDER BY), so two distributions
    of overlapping lists lock their common users in the same order and never each hold a row the other waits
    for. Written as SQL over one array a batch: the ORM's bulk_create built a model object and a parameter per
    user, and took most of a 50,000-user distribution's time.
    """
    table = BookUser._meta.db_table
    sql = f"""
        INSERT INTO {table} (book_id, user_id)
        SELECT %s, t.user_id FROM unnest(%s::text[]) WITH ORDINALITY AS t(user_id, n) ORDER BY t.n
        ON CONFLICT (book_id, user_id) DO UPDATE SET user_id = EXCLUDED.user_id
    """
    with connection.cursor() as cursor:
        for start in range(0, len(user_ids), batch_size):
            cursor.execute(sql, [book.pk, user_ids[start : start + batch_size]])


def book_lock(*, book_id: int) -> CouponBook:
    """The book row, locked while the book itself changes or codes are added to it.

    NO KEY matters most here: every reservation, redemption and event points at its book, so a plain FOR UPDATE
    made every lock and redeem in the book wait for a whole generation job, and book_update (book, then its codes)
    deadlocked with a redeem (its code, then a row pointing at the book).
    """
    return CouponBook.objects.select_for_update(no_key=True).get(pk=book_id)


def book_allowance_take(
    *,
    book_id: int,
    redemptions: int = 0,
    discount: Decimal = Decimal(0),
    new_hold: bool = False,
    consumed_expires_at: datetime | None = None,
) -> bool:
    """A use's share of a limited book's allowance, taken from ONE shard with room that no one else holds, LAST
    of a service's locks, with the use's part of the book's standing redemptions and discount; False when no
    free shard has room (the caller then recounts: books/services/book_limits.py).

    The share: one use (a new hold, or a redemption without one), plus its discount, plus what a new hold takes
    of the budget (the shard's hold_value). A redemption that consumes a hold the last recount counted (one
    expiring after the shard's recounted_at) takes no use and gives the hold's value back against its discount:
    that use was taken already. A hold the recount left out had expired by then: its use is taken afresh.

    SKIP LOCKED, in random order: concurrent uses of the book take different shards and never wait for each
    other's commit; a shard row's lock is held only through this one statement and the commit. Its conditions
    are re-checked on the newest version of the row it locks, so two uses never both take a shard's last room;
    a shard whose newest version fails them is skipped but stays locked to the end of the transaction (see
    book_allowances_lock).
    One statement, one round trip, as the counter row's UPDATE it replaces (test_campaign_limits).
    """
    table = connection.ops.quote_name(BookAllowance._meta.db_table)
    counted = "(CASE WHEN %(consumed)s::timestamptz > {row}.recounted_at THEN 1 ELSE 0 END)"
    query = f"""
        UPDATE {table} AS a SET redemptions = a.redemptions + %(redemptions)s, discount = a.discount + %(discount)s,
            uses_left = a.uses_left - (1 - {counted.format(row="a")}),
            budget_left = a.budget_left - (%(discount)s + (%(holds)s - {counted.format(row="a")}) * a.hold_value)
        WHERE a.id = (
            SELECT s.id FROM {table} AS s
            WHERE s.book_id = %(book)s
                AND (s.uses_left IS NULL OR s.uses_left >= 1 - {counted.format(row="s")})
                AND (s.budget_left IS NULL OR (
                    s.budget_left >= %(discount)s + (%(holds)s - {counted.format(row="s")}) * s.hold_value
                    AND (%(holds)s = 0 OR s.budget_left > 0)))
            ORDER BY random() LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED
        )
        RETURNING a.id
    """
    params = {
        "book": book_id,
        "redemptions": redemptions,
        "discount": discount,
        "holds": int(new_hold),
        "consumed": consumed_expires_at,
    }
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone() is not None


def book_allowances_lock(*, book_id: int) -> None:
    """Every shard of the book's allowance, locked in id order, waiting for their holders (the recount).

    The one place a transaction asks for more than one shard: all of them, always in the same order, and it
    waits for nothing else while it holds them; every other holder holds one shard and only commits. One lock
    escapes that order: a recounting use may already hold a shard that its SKIP LOCKED pick locked and then
    skipped (book_allowance_take), so two recounts can deadlock; the one PostgreSQL fails runs again whole
    (core/transactions.py, books/tests/test_campaign_limits.py).
    """
    list(BookAllowance.objects.filter(book_id=book_id).order_by("pk").select_for_update(no_key=True).values_list("pk"))


def book_allowance_give_back(*, book_id: int, redemptions: int, discount: Decimal) -> None:
    """A reversed redemption's part taken off the book's standing redemptions and discount, on any one shard:
    a free one if there is one, else the first (waited for, holding no other shard). Its use and discount reach
    the allowance at the next recount, never before (BookAllowance says why)."""
    table = connection.ops.quote_name(BookAllowance._meta.db_table)
    query = f"""
        UPDATE {table} SET redemptions = redemptions + %(redemptions)s, discount = discount + %(discount)s
        WHERE id = COALESCE(
            (SELECT id FROM {table} WHERE book_id = %(book)s ORDER BY random() LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED),
            (SELECT MIN(id) FROM {table} WHERE book_id = %(book)s)
        )
    """
    with connection.cursor() as cursor:
        cursor.execute(query, {"book": book_id, "redemptions": redemptions, "discount": discount})


def code_lock_qs() -> QuerySet[Code]:
    """Codes, row-locked (only the code rows, not the joined book)."""
    return Code.objects.select_for_update(of=("self",), no_key=True).select_related("book")


def code_relock(code: Code) -> Code:
    """The same code row, locked, with its book: every decision after this reads only locked data."""
    return code_lock_qs().get(pk=code.pk)


def free_codes_claim_qs(*, book: CouponBook) -> QuerySet[Code]:
    """The book's free codes in shuffle order, locking the first one not locked by someone else.

    SKIP LOCKED lets N concurrent claimers take N different codes without waiting on each other; a plain
    FOR UPDATE would queue them all on the same first row.
    """
    return (
        Code.objects.filter(book=book, state=Code.State.FREE).order_by("shuffle").select_for_update(skip_locked=True, no_key=True)
    )


def reservation_lock_qs() -> QuerySet[Reservation]:
    return Reservation.objects.select_for_update(of=("self",), no_key=True)


def expired_reservations_lock_qs() -> QuerySet[Reservation]:
    """Active reservations, locked without waiting: two expiry runs at once split the rows between them."""
    # of=self: the expiry task joins the code and book for its events but must not lock those rows.
    return (
        Reservation.objects.filter(status=Reservation.Status.ACTIVE)
        .order_by("expires_at", "pk")
        .select_for_update(skip_locked=True, of=("self",), no_key=True)
    )


def redemption_lock_qs():
    from redemptions.models import Redemption  # the redemption log lives in its own app

    return Redemption.objects.select_for_update(of=("self",), no_key=True)
