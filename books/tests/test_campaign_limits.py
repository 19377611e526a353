"""Campaign limits: max_redemptions and budget_amount (book-wide, exact under concurrency on PostgreSQL, with active
reservations counted and reversals giving back), min_order_amount and max_discount_amount (per order).

The concurrency tests run real threads against PostgreSQL, as books/tests/test_concurrency.py does.
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal
from functools import partial
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from books import lock_objects
from books.models import BookAllowance, BookCounter, Code, CouponBook, Reservation
from books.rules import BOOK_ALLOWANCE_SHARDS
from books.selectors import code_validate
from books.services.book_limits import book_allowance_recount
from books.services.books import book_create, book_update
from books.services.codes import code_redeem, code_release, code_reserve, redemption_reverse
from core.exceptions import ApplicationError
from redemptions.models import Redemption
from tests.factories import CodeFactory, CouponBookFactory

from .concurrency import error_counts, run_concurrently, successes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


MONEY = ("discount_value", "budget_amount", "min_order_amount", "max_discount_amount")


def typed(fields: dict) -> dict:
    """Amounts as the edges hand them to the services: Decimals."""
    return {name: Decimal(value) if name in MONEY and value is not None else value for name, value in fields.items()}


def limited_book(tenant, *, codes: int, **limits) -> CouponBook:
    """An active book of `codes` unique codes, CODE-0 .. CODE-n, each assigned to user-i."""
    book = book_create(tenant=tenant, name="Campaign", status="active", **typed(limits))
    for i in range(codes):
        CodeFactory(book=book, tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", state=Code.State.ASSIGNED)
    return book


def redeem_each(tenant, actor, users, **extra):
    return [
        partial(code_redeem, tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor, order_ref=f"o-{i}", **extra)
        for i in users
    ]


def standing(book) -> int:
    return Redemption.objects.filter(book=book, reversed_at__isnull=True).count()


def assert_counter_matches(book) -> None:
    """The counter equals the standing redemptions and their discount, as a recount from the log gives them."""
    counter = BookCounter.objects.get(book=book)
    rows = Redemption.objects.filter(book=book, reversed_at__isnull=True)
    assert counter.redemptions == rows.count()
    assert counter.discount == sum((r.discount or Decimal(0) for r in rows), Decimal(0))


# --- Exact under concurrency --------------------------------------------------------------------------------


def test_fifty_parallel_redeemers_of_a_book_limited_to_ten_get_exactly_ten(tenant, actor):
    book = limited_book(tenant, codes=50, max_redemptions=10)

    outcomes = run_concurrently(redeem_each(tenant, actor, range(50)))

    assert len(successes(outcomes)) == 10
    assert error_counts(outcomes) == {"book_redemption_limit_reached": 40}
    assert standing(book) == 10
    assert Code.objects.filter(book=book, redeemed_count=1).count() == 10
    assert_counter_matches(book)


def test_a_budget_of_100_with_20_eur_discounts_gives_exactly_five_to_thirty_parallel_redeemers(tenant, actor):
    book = limited_book(tenant, codes=30, discount_type="fixed", discount_value="20", currency="EUR", budget_amount="100")

    outcomes = run_concurrently(redeem_each(tenant, actor, range(30), amount=Decimal("80.00"), currency="EUR"))

    assert len(successes(outcomes)) == 5
    assert error_counts(outcomes) == {"book_budget_exhausted": 25}
    assert sum(r.discount for r in Redemption.objects.filter(book=book)) == Decimal("100.00")
    assert_counter_matches(book)


def test_a_reversal_makes_room_for_exactly_one_more(tenant, actor):
    book = limited_book(tenant, codes=40, max_redemptions=10, discount_type="fixed", discount_value="5", currency="EUR")
    first = successes(run_concurrently(redeem_each(tenant, actor, range(20))))
    assert len(first) == 10

    redemption_reverse(tenant=tenant, redemption_id=first[0].pk, actor=actor, reason="returned")
    assert BookCounter.objects.get(book=book).redemptions == 9

    outcomes = run_concurrently(redeem_each(tenant, actor, range(20, 40)))
    assert len(successes(outcomes)) == 1
    assert error_counts(outcomes) == {"book_redemption_limit_reached": 19}
    assert standing(book) == 10
    assert_counter_matches(book)


def test_two_uses_that_deadlock_in_their_recounts_both_go_through(tenant, actor):
    """A SKIP LOCKED pick of a shard can leave that shard locked without taking it (its newest version had no room
    left: core/transactions.py), and a use that then recounts holds it while it locks every shard in id order. Two
    such uses, one holding the last shard and one the first, deadlock in their recounts (CI saw it in
    test_a_reversal_makes_room_for_exactly_one_more): PostgreSQL fails one, which runs again whole and goes through.
    The stray locks are made here, as the pick leaves them, because the race that leaves them cannot be timed."""
    book = limited_book(tenant, codes=2, max_redemptions=10)
    shards = list(BookAllowance.objects.filter(book=book).order_by("pk").values_list("pk", flat=True))
    strays = [shards[-1], shards[0]]  # the first use holds the last shard, the second the first
    both_hold_theirs = threading.Barrier(2)
    picks, picks_lock = [], threading.Lock()
    pick = lock_objects.book_allowance_take

    def pick_leaving_a_stray_lock(**use):
        with picks_lock:
            picks.append(use)
            stray = strays[len(picks) - 1] if len(picks) <= len(strays) else None
        if stray is None:
            return pick(**use)  # the victim's second run
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {BookAllowance._meta.db_table} WHERE id = %s FOR NO KEY UPDATE", [stray])
        both_hold_theirs.wait(timeout=30)
        return False  # "no free shard with room": the use recounts, holding the stray lock

    with mock.patch.object(lock_objects, "book_allowance_take", side_effect=pick_leaving_a_stray_lock):
        outcomes = run_concurrently(redeem_each(tenant, actor, range(2)))

    assert len(successes(outcomes)) == 2
    assert len(picks) == 3  # the victim ran again: one pick more
    assert standing(book) == 2
    assert_counter_matches(book)


def test_a_reversal_gives_its_discount_back_to_the_budget(tenant, actor):
    book = limited_book(tenant, codes=12, discount_type="fixed", discount_value="20", currency="EUR", budget_amount="100")
    first = successes(run_concurrently(redeem_each(tenant, actor, range(6))))
    assert len(first) == 5
    redemption_reverse(tenant=tenant, redemption_id=first[0].pk, actor=actor)
    assert BookCounter.objects.get(book=book).discount == Decimal("80.00")

    outcomes = run_concurrently(redeem_each(tenant, actor, range(6, 12)))
    assert len(successes(outcomes)) == 1
    assert_counter_matches(book)


def test_parallel_locks_hold_the_limit_and_their_tokens_all_redeem(tenant, actor):
    book = limited_book(tenant, codes=20, max_redemptions=5)

    locks = run_concurrently(
        [partial(code_reserve, tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor) for i in range(20)]
    )
    held = successes(locks)
    assert len(held) == 5
    assert error_counts(locks) == {"book_redemption_limit_reached": 15}

    # The holds count: nobody else redeems, even without a lock of their own.
    others = [i for i in range(20) if f"CODE-{i}" not in {r.code.code for r in held}]
    refused = run_concurrently(redeem_each(tenant, actor, others))
    assert error_counts(refused) == {"book_redemption_limit_reached": 15}

    # Every holder redeems with its token.
    redeemed = run_concurrently(
        [partial(code_redeem, tenant=tenant, code=r.code.code, user_id=r.user_id, actor=actor, token=r.token) for r in held]
    )
    assert len(successes(redeemed)) == 5
    assert standing(book) == 5
    assert_counter_matches(book)


def test_locks_and_lockless_redeems_racing_share_the_limit_exactly(tenant, actor):
    book = limited_book(tenant, codes=40, max_redemptions=7)
    calls = [
        partial(code_reserve, tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor) if i % 2 else call
        for i, call in enumerate(redeem_each(tenant, actor, range(40)))
    ]

    outcomes = run_concurrently(calls)

    assert len(successes(outcomes)) == 7
    now = timezone.now()
    holds = Reservation.objects.filter(book=book, status=Reservation.Status.ACTIVE, expires_at__gt=now).count()
    assert standing(book) + holds == 7


def test_an_expired_hold_stops_counting_at_once_whether_or_not_the_expiry_task_ran(tenant, actor):
    book = limited_book(tenant, codes=3, max_redemptions=1)
    reservation = code_reserve(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor)
    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="CODE-1", user_id="user-1", actor=actor)
    assert refused.value.code == "book_redemption_limit_reached"

    # Past its time, still marked active (the task has not run): it no longer holds the book's last use.
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Reservation.objects.get(pk=reservation.pk).status == Reservation.Status.ACTIVE
    code_redeem(tenant=tenant, code="CODE-1", user_id="user-1", actor=actor)
    assert standing(book) == 1


def test_a_capped_percent_book_holds_its_cap_of_the_budget_for_each_lock(tenant, actor):
    book = limited_book(
        tenant, codes=6, discount_type="percent", discount_value="50", max_discount_amount="30", currency="EUR",
        budget_amount="100",
    )  # fmt: skip
    locks = [code_reserve(tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor) for i in range(3)]
    with pytest.raises(ApplicationError) as refused:  # 3 x 30 held, 10 left: a fourth hold of 30 does not fit
        code_reserve(tenant=tenant, code="CODE-3", user_id="user-3", actor=actor)
    assert refused.value.code == "book_budget_exhausted"

    # A holder's redemption is at most the cap, so it always fits; what it leaves unused goes back to the budget.
    redemption = code_redeem(
        tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, token=locks[0].token, amount=Decimal("20"), currency="EUR"
    )
    assert redemption.discount == Decimal("10.00")
    code_reserve(tenant=tenant, code="CODE-3", user_id="user-3", actor=actor)  # 10 + 3 x 30 = 100
    assert_counter_matches(book)


def test_an_uncapped_percent_book_checks_its_budget_at_redeem_with_the_real_discount(tenant, actor):
    book = limited_book(tenant, codes=3, discount_value="50", currency="EUR", budget_amount="30")
    lock = code_reserve(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor)  # holds nothing
    code_redeem(tenant=tenant, code="CODE-1", user_id="user-1", actor=actor, amount=Decimal("40"), currency="EUR")  # 20 of 30
    with pytest.raises(ApplicationError) as refused:  # 50 % of 40 = 20 > the 10 left, lock or not
        code_redeem(
            tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, token=lock.token, amount=Decimal("40"), currency="EUR"
        )
    assert refused.value.code == "book_budget_exhausted"
    code_redeem(
        tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, token=lock.token, amount=Decimal("20"), currency="EUR"
    )  # 10 fits
    with pytest.raises(ApplicationError) as spent:  # nothing left: not even a lock
        code_reserve(tenant=tenant, code="CODE-2", user_id="user-2", actor=actor)
    assert spent.value.code == "book_budget_exhausted"
    assert_counter_matches(book)


# --- The shards: the recount, what it gives back, what it never gives twice ----------------------------------


def assert_allowance_within_limits(book) -> None:
    """What the shards still allow never exceeds what the limits leave of the usage now (equal after a recount)."""
    book.refresh_from_db()
    shards = BookAllowance.objects.filter(book=book)
    assert shards.count() == BOOK_ALLOWANCE_SHARDS
    now = timezone.now()
    held = Reservation.objects.filter(book=book, status=Reservation.Status.ACTIVE, expires_at__gt=now).count()
    if book.max_redemptions is not None:
        assert sum(shard.uses_left for shard in shards) <= max(book.max_redemptions - standing(book) - held, 0)


def test_the_recount_gives_back_what_expired_and_released_holds_kept_and_only_that(tenant, actor):
    book = limited_book(tenant, codes=30, max_redemptions=10)
    holds = [code_reserve(tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor) for i in range(10)]
    with pytest.raises(ApplicationError):
        code_reserve(tenant=tenant, code="CODE-10", user_id="user-10", actor=actor)
    # Three holds lapse (the expiry task has not run), two are released: five uses are free again.
    Reservation.objects.filter(pk__in=[h.pk for h in holds[:3]]).update(expires_at=timezone.now() - timedelta(seconds=1))
    for hold in holds[3:5]:
        code_release(tenant=tenant, code=hold.code.code, user_id=hold.user_id, actor=actor, token=hold.token)

    outcomes = run_concurrently(redeem_each(tenant, actor, range(10, 30)))

    assert len(successes(outcomes)) == 5
    assert error_counts(outcomes) == {"book_redemption_limit_reached": 15}
    # The five holds still active were counted all along: every one redeems, in parallel, with its token.
    redeemed = run_concurrently(
        [partial(code_redeem, tenant=tenant, code=h.code.code, user_id=h.user_id, actor=actor, token=h.token) for h in holds[5:]]
    )
    assert len(successes(redeemed)) == 5
    assert standing(book) == 10
    assert_counter_matches(book)
    assert_allowance_within_limits(book)


def test_a_hold_the_recount_saw_expired_is_never_given_back_twice(tenant, actor):
    """A redeem whose clock still finds its hold active, after a recount whose clock found it expired (and so
    gave its use to others), takes a use afresh: it is refused when none is left, not let through on the hold."""
    book = limited_book(tenant, codes=4, max_redemptions=2)
    hold = code_reserve(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, ttl_seconds=60)
    later = timezone.now() + timedelta(seconds=120)
    with mock.patch("books.services.book_limits.timezone.now", return_value=later), transaction.atomic():
        book_allowance_recount(book_id=book.pk)  # another process's recount, its clock past the hold's expiry
    code_redeem(tenant=tenant, code="CODE-1", user_id="user-1", actor=actor)
    code_redeem(tenant=tenant, code="CODE-2", user_id="user-2", actor=actor)

    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, token=hold.token)

    assert refused.value.code == "book_redemption_limit_reached"
    assert standing(book) == 2
    assert_counter_matches(book)


def test_a_limit_lowered_below_the_holds_takes_nothing_back_from_the_holders(tenant, actor):
    book = limited_book(tenant, codes=4, max_redemptions=3, discount_type="fixed", discount_value="10", currency="EUR")
    holds = [code_reserve(tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor) for i in range(2)]
    book_update(book=book, max_redemptions=1, budget_amount=Decimal("10"))

    assert code_validate(tenant=tenant, code="CODE-0", user_id="user-0").valid
    assert code_validate(tenant=tenant, code="CODE-2", user_id="user-2").reason == "book_redemption_limit_reached"
    # The recount decides as the shard would: a counted hold's redemption adds nothing to what the limits count.
    with transaction.atomic():
        book_allowance_recount(
            book_id=book.pk, redemptions=1, discount=Decimal("10"), consumed_expires_at=holds[1].expires_at, check=True
        )
        transaction.set_rollback(True)
    redeemed = run_concurrently(
        [partial(code_redeem, tenant=tenant, code=h.code.code, user_id=h.user_id, actor=actor, token=h.token) for h in holds]
    )
    assert len(successes(redeemed)) == 2
    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="CODE-2", user_id="user-2", actor=actor)
    assert refused.value.code == "book_redemption_limit_reached"
    assert_counter_matches(book)


def test_discounts_larger_than_any_one_shard_are_merged_by_the_recount_exactly(tenant, actor):
    # 1000 EUR over 16 shards is 62.50 each; every discount here is 100 (50 % of 200): none fits one shard.
    book = limited_book(tenant, codes=30, discount_value="50", currency="EUR", budget_amount="1000")
    assert max(shard.budget_left for shard in BookAllowance.objects.filter(book=book)) < Decimal("100")

    outcomes = run_concurrently(redeem_each(tenant, actor, range(30), amount=Decimal("200"), currency="EUR"))

    assert len(successes(outcomes)) == 10
    assert error_counts(outcomes) == {"book_budget_exhausted": 20}
    assert sum(r.discount for r in Redemption.objects.filter(book=book)) == Decimal("1000.00")
    assert_counter_matches(book)


def test_a_limit_lowered_under_load_refuses_every_use_that_starts_after_it(tenant, actor):
    book = limited_book(tenant, codes=60, max_redemptions=1000)
    for call in redeem_each(tenant, actor, range(12)):
        call()
    started: dict[int, float] = {}
    lowered: dict[str, float] = {}

    def redeem_at(i: int):
        started[i] = time.monotonic()
        return redeem_each(tenant, actor, [i])[0]()

    def lower():
        book_update(book=CouponBook.objects.get(pk=book.pk), max_redemptions=10)  # below the 12 given
        lowered["at"] = time.monotonic()

    calls = [partial(redeem_at, i) for i in range(12, 42)]
    calls.insert(10, lower)
    outcomes = run_concurrently(calls)

    redeems = outcomes[:10] + outcomes[11:]
    assert not [i for i, outcome in zip(range(12, 42), redeems, strict=True) if outcome.ok and started[i] > lowered["at"]]
    assert set(error_counts(redeems)) <= {"book_redemption_limit_reached"}
    assert_counter_matches(book)
    assert_allowance_within_limits(book)
    assert not [shard for shard in BookAllowance.objects.filter(book=book) if shard.uses_left]
    # Closed: nothing more goes through until reversals bring it under the new limit, then exactly what fits.
    given = standing(book)
    for redemption in Redemption.objects.filter(book=book)[: given - 9]:
        redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=actor)
    outcomes = run_concurrently(redeem_each(tenant, actor, range(42, 60)))
    assert len(successes(outcomes)) == 1
    assert standing(book) == 10
    assert_counter_matches(book)


# --- What a book without limits pays: nothing ---------------------------------------------------------------


def _redeem_statements(tenant, actor, code: str, user: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        code_redeem(tenant=tenant, code=code, user_id=user, actor=actor)
    return [q["sql"] for q in queries.captured_queries]


def test_a_book_without_limits_issues_no_extra_statement_and_a_limited_one_round_trip(tenant, actor):
    plain = book_create(tenant=tenant, name="Plain", status="active")
    limited = book_create(tenant=tenant, name="Limited", status="active", max_redemptions=100)
    for book, name in ((plain, "PLAIN"), (limited, "LIMITED")):
        for i in range(2):
            CodeFactory(book=book, tenant=tenant, code=f"{name}-{i}", user_id=f"u-{name}-{i}", state=Code.State.ASSIGNED)
    _redeem_statements(tenant, actor, "PLAIN-0", "u-PLAIN-0")  # warm-up: first-use look-ups of the test process
    _redeem_statements(tenant, actor, "LIMITED-0", "u-LIMITED-0")

    plain_sql = _redeem_statements(tenant, actor, "PLAIN-1", "u-PLAIN-1")
    limited_sql = _redeem_statements(tenant, actor, "LIMITED-1", "u-LIMITED-1")

    shard_table = BookAllowance._meta.db_table
    assert not [sql for sql in plain_sql if shard_table in sql]
    assert len(limited_sql) == len(plain_sql) + 1
    # One shard's lock and the use's share taken from it, in one statement, the last before the commit.
    assert limited_sql[-1] == "COMMIT"
    assert limited_sql[-2].split()[:2] == ["UPDATE", f'"{shard_table}"']
    assert not [sql for sql in limited_sql[:-2] if shard_table in sql]


# --- Switching limits on and off ---------------------------------------------------------------------------


def test_limits_switched_on_for_a_running_campaign_count_what_it_already_gave(tenant, actor):
    book = limited_book(tenant, codes=6, discount_type="fixed", discount_value="10", currency="EUR")
    for i in range(3):
        code_redeem(tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor)
    assert not Code.objects.filter(book=book, book_limited=True).exists()

    book_update(book=book, max_redemptions=4, budget_amount=Decimal("100"))

    assert Code.objects.filter(book=book, book_limited=True).count() == 6
    assert_counter_matches(book)
    code_redeem(tenant=tenant, code="CODE-3", user_id="user-3", actor=actor)
    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="CODE-4", user_id="user-4", actor=actor)
    assert refused.value.code == "book_redemption_limit_reached"

    book_update(book=book, max_redemptions=None, budget_amount=None)  # off: nothing counted, nothing refused
    assert not Code.objects.filter(book=book, book_limited=True).exists()
    code_redeem(tenant=tenant, code="CODE-4", user_id="user-4", actor=actor)
    book_update(book=book, max_redemptions=6)  # on again: the counter restarts from the log
    assert_counter_matches(book)
    assert BookCounter.objects.get(book=book).redemptions == 5


def test_switching_limits_on_while_redeemers_race_counts_every_one_of_them(tenant, actor):
    book = limited_book(tenant, codes=30, discount_type="fixed", discount_value="1", currency="EUR")
    calls = redeem_each(tenant, actor, range(30))
    calls.insert(15, partial(book_update, book=book, max_redemptions=1000))

    outcomes = run_concurrently(calls)

    assert all(outcome.ok for outcome in outcomes)
    assert_counter_matches(book)


def test_a_lowered_limit_closes_the_campaign_without_taking_anything_back(tenant, actor):
    book = limited_book(tenant, codes=4, max_redemptions=3)
    for i in range(2):
        code_redeem(tenant=tenant, code=f"CODE-{i}", user_id=f"user-{i}", actor=actor)
    book_update(book=book, max_redemptions=1)
    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="CODE-2", user_id="user-2", actor=actor)
    assert refused.value.code == "book_redemption_limit_reached"
    assert standing(book) == 2


def test_codes_generated_into_a_limited_book_are_counted(tenant, actor):
    from books.services.code_creation import generation_request

    book = book_create(tenant=tenant, name="Limited", status="active", max_redemptions=1, requires_assignment=False)
    generation_request(book=book, count=3, pattern="GEN-####", actor=actor)
    assert Code.objects.filter(book=book, book_limited=True).count() == 3


# --- Per order: the minimum and the cap ---------------------------------------------------------------------


def test_an_order_below_the_minimum_gets_no_discount(tenant, actor):
    limited_book(tenant, codes=3, min_order_amount="50", discount_value="10")
    with pytest.raises(ApplicationError) as below:
        code_redeem(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, amount=Decimal("49.99"), currency="EUR")
    assert below.value.code == "order_below_minimum"
    assert below.value.status == 409
    with pytest.raises(ApplicationError) as missing:
        code_redeem(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor)
    assert missing.value.code == "order_amount_required"
    assert code_redeem(
        tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, amount=Decimal("50"), currency="EUR"
    ).discount == Decimal("5.00")


def test_a_percent_discount_is_capped_per_order(tenant, actor):
    limited_book(tenant, codes=2, discount_value="10", max_discount_amount="20", currency="EUR")
    assert code_redeem(
        tenant=tenant, code="CODE-0", user_id="user-0", actor=actor, amount=Decimal("500"), currency="EUR"
    ).discount == Decimal("20")
    assert code_redeem(
        tenant=tenant, code="CODE-1", user_id="user-1", actor=actor, amount=Decimal("150"), currency="EUR"
    ).discount == Decimal("15.00")


def test_a_budgeted_percent_book_needs_the_amount(tenant, actor):
    limited_book(tenant, codes=1, discount_value="10", currency="EUR", budget_amount="100")
    with pytest.raises(ApplicationError) as missing:
        code_redeem(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor)
    assert missing.value.code == "order_amount_required"


# --- Validate gives the same reasons, changing nothing -----------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "amount", "reason"),
    [
        ({"max_redemptions": 1}, None, "book_redemption_limit_reached"),
        (
            {"discount_type": "fixed", "discount_value": "20", "currency": "EUR", "budget_amount": "30"},
            None,
            "book_budget_exhausted",
        ),
        ({"min_order_amount": "50"}, "20", "order_below_minimum"),
        ({"min_order_amount": "50"}, None, "order_amount_required"),
    ],
)
def test_validate_answers_the_limit_a_redeem_would_break(tenant, actor, limits, amount, reason):
    book = limited_book(tenant, codes=2, **limits)
    if "min_order_amount" not in limits:
        code_redeem(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor)
    before = BookCounter.objects.filter(book=book).values_list("redemptions", flat=True).first()

    result = code_validate(tenant=tenant, code="CODE-1", user_id="user-1", amount=amount and Decimal(amount))

    assert (result.valid, result.reason) == (False, reason)
    assert BookCounter.objects.filter(book=book).values_list("redemptions", flat=True).first() == before


def test_validate_of_a_holder_does_not_count_their_own_hold(tenant, actor):
    limited_book(tenant, codes=2, max_redemptions=1)
    code_reserve(tenant=tenant, code="CODE-0", user_id="user-0", actor=actor)
    assert code_validate(tenant=tenant, code="CODE-0", user_id="user-0").valid
    assert code_validate(tenant=tenant, code="CODE-1", user_id="user-1").reason == "book_redemption_limit_reached"


# --- The rules of the fields -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"budget_amount": "100"}, "currency"),
        ({"budget_amount": "0", "currency": "EUR"}, "budget_amount"),
        ({"budget_amount": "-5", "currency": "EUR"}, "budget_amount"),
        ({"max_discount_amount": "0"}, "max_discount_amount"),
        ({"discount_type": "fixed", "currency": "EUR", "max_discount_amount": "5"}, "max_discount_amount"),
    ],
)
def test_book_limits_refuse_inconsistent_values(tenant, fields, field):
    """The rules between fields, which the service checks (the edges check each field's type and range)."""
    with pytest.raises(ApplicationError) as refused:
        book_create(tenant=tenant, name="Bad", **typed(fields))
    assert refused.value.code == "invalid_input"
    assert refused.value.details["field"] == field


def test_the_database_refuses_a_budget_without_a_currency(tenant):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        CouponBookFactory(tenant=tenant, budget_amount=Decimal("10"), currency="")
