"""Every row lock the coupon services take, in one place (after Saleor's giftcard/lock_objects.py).

Lock order, always: BookUser (the user's standing in a book) -> Code -> Reservation / Redemption -> BookCounter
(a book's campaign-limit counter, only for a book with max_redemptions or budget_amount). Every service that takes
more than one of these takes them in this order, so two transactions can never each hold the lock the other waits
for (no deadlock). The counter is the one row every use of its book takes, so it comes last: taken just before the
transaction commits, it is held for one round trip and the commit, not for the whole redeem. Locks are row locks
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

from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet
from psycopg import sql

from .models import BookCounter, BookUser, Code, CouponBook, Reservation


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


def book_counter_add(*, book_id: int, redemptions: int = 0, discount: Decimal = Decimal(0), then: str = "") -> tuple | None:
    """Lock the book's counter row, LAST of a service's locks, adding a redemption's share to it (or taking a
    reversed one's back; nothing, to lock it for a reservation). With `then`, a read run right after the lock is
    granted: its row is returned.

    An UPDATE with the sums in SQL: it waits for the previous holder and adds to the row as that one committed it.
    It reads nothing itself on purpose: a statement's snapshot is taken before it waits, so what must see the
    previous holder's commit (books.rules.book_usage_query) is the next statement, `then`. Both go in one round
    trip (one query string, no parameters: PostgreSQL runs them in turn, each with its own snapshot), because
    every redeem of the book waits while this one holds the row: with a second round trip under the lock, the
    limited book ran at 0.55 of the unlimited one in a run on this loaded machine (bench/bench_campaign.py).
    """
    table = BookCounter._meta.db_table
    update = sql.SQL("UPDATE {} SET redemptions = redemptions + {}, discount = discount + {} WHERE book_id = {}").format(
        sql.Identifier(table), sql.Literal(redemptions), sql.Literal(discount), sql.Literal(book_id)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"{update.as_string(connection.connection)}; {then}" if then else update.as_string(connection.connection))
        if then:
            cursor.cursor.nextset()
            return cursor.fetchone()
    return None


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
