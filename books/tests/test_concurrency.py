"""Real concurrency against PostgreSQL: threads call the services at the same moment, and every limit holds.

Django's TestCase wraps everything in one transaction, which would hide races: these tests each run in a
transactional test database, so the threads see each other's commits.
"""

import random
from collections import Counter
from datetime import timedelta
from functools import partial

import pytest
from django.db.models import Q
from django.utils import timezone

from books.models import BookUser, Code, Event, Reservation
from books.services.codes import (
    code_assign,
    code_assign_random,
    code_redeem,
    code_release,
    code_reserve,
    redemption_reverse,
    reservations_expire,
)
from core.exceptions import ApplicationError
from redemptions.models import Redemption
from tests.factories import CodeFactory, CouponBookFactory

from .concurrency import error_counts, run_concurrently, successes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def standing_redemptions(**filters) -> int:
    return Redemption.objects.filter(reversed_at__isnull=True, **filters).count()


def active_reservations(**filters) -> int:
    return Reservation.objects.filter(status=Reservation.Status.ACTIVE, expires_at__gt=timezone.now(), **filters).count()


def assert_code_invariants(book) -> None:
    """For every code: redemptions + active holds <= uses, and redeemed_count equals the standing redemptions."""
    for code in Code.objects.filter(book=book):
        standing = standing_redemptions(code=code)
        assert code.redeemed_count == standing, code.code
        if code.max_uses is not None:
            assert code.redeemed_count + active_reservations(code=code) <= code.max_uses, code.code
        expected_state = Code.State.REDEEMED if code.max_uses is not None and standing >= code.max_uses else None
        if expected_state:
            assert code.state == expected_state, code.code


# --- 1. The last use of a code ------------------------------------------------------------------------------


def test_fifty_users_redeem_the_last_use_of_a_shared_code_exactly_one_wins(tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=3, max_codes_per_user=None)
    code = CodeFactory(book=book, code="SUMMER24")
    for early in ("early-1", "early-2"):
        code_redeem(tenant=tenant, code="SUMMER24", user_id=early, actor=actor)

    outcomes = run_concurrently(
        [
            partial(code_redeem, tenant=tenant, code="summer24", user_id=f"user-{i}", actor=actor, order_ref=f"order-{i}")
            for i in range(50)
        ]
    )

    winners = successes(outcomes)
    assert len(winners) == 1
    errors = error_counts(outcomes)
    assert sum(errors.values()) == 49
    assert set(errors) <= {"code_locked", "code_exhausted"}
    code.refresh_from_db()
    assert code.redeemed_count == 3
    assert code.state == Code.State.REDEEMED
    new = Redemption.objects.filter(code=code).exclude(user_id__startswith="early-")
    assert list(new.values_list("pk", "user_id")) == [(winners[0].pk, winners[0].user_id)]
    assert standing_redemptions(code=code) == 3
    assert Event.objects.filter(code=code, kind=Event.Kind.REDEEMED).count() == 3


def test_token_holder_wins_the_single_use_against_fifty_redeems_of_the_assignee(tenant, actor):
    book = CouponBookFactory(tenant=tenant, uses_per_code=1, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="ALICE-ONLY")
    code_assign(tenant=tenant, code="ALICE-ONLY", user_id="alice", actor=actor)
    reservation = code_reserve(tenant=tenant, code="ALICE-ONLY", user_id="alice", actor=actor)

    calls = [partial(code_redeem, tenant=tenant, code="ALICE-ONLY", user_id="alice", actor=actor) for _ in range(49)]
    calls.insert(
        25, partial(code_redeem, tenant=tenant, code="ALICE-ONLY", user_id="alice", actor=actor, token=reservation.token)
    )
    outcomes = run_concurrently(calls)

    assert outcomes[25].ok
    assert len(successes(outcomes)) == 1
    errors = error_counts(outcomes)
    assert sum(errors.values()) == 49
    assert set(errors) <= {"code_locked", "code_exhausted"}
    redemption = outcomes[25].value
    assert list(Redemption.objects.filter(code=code).values_list("pk", "reservation_id")) == [(redemption.pk, reservation.pk)]
    reservation.refresh_from_db()
    assert reservation.status == Reservation.Status.CONSUMED
    code.refresh_from_db()
    assert (code.redeemed_count, code.state) == (1, Code.State.REDEEMED)


# --- 2. Random assignment -----------------------------------------------------------------------------------


def test_twenty_users_assign_from_ten_free_codes(tenant, actor):
    book = CouponBookFactory(tenant=tenant)
    CodeFactory.create_batch(10, book=book)

    outcomes = run_concurrently(
        [partial(code_assign_random, tenant=tenant, book_id=book.pk, user_id=f"user-{i}", actor=actor) for i in range(20)]
    )

    assigned = successes(outcomes)
    assert len(assigned) == 10
    assert len({code.pk for code in assigned}) == 10
    assert error_counts(outcomes) == Counter({"book_exhausted": 10})
    rows = Code.objects.filter(book=book)
    assert not rows.filter(state=Code.State.FREE).exists()
    assert sorted(rows.values_list("user_id", flat=True)) == sorted(code.user_id for code in assigned)
    assert len(set(rows.values_list("user_id", flat=True))) == 10
    assert Event.objects.filter(book=book, kind=Event.Kind.ASSIGNED).count() == 10


# --- 3. Per-user limits under one user's concurrent attempts -------------------------------------------------


def test_max_codes_per_user_holds_under_twenty_concurrent_assigns_by_one_user(tenant, actor):
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=3)
    CodeFactory.create_batch(20, book=book)

    outcomes = run_concurrently(
        [partial(code_assign_random, tenant=tenant, book_id=book.pk, user_id="greedy", actor=actor) for _ in range(20)]
    )

    assert len(successes(outcomes)) == 3
    assert error_counts(outcomes) == Counter({"user_code_limit_reached": 17})
    assert Code.objects.filter(book=book, user_id="greedy", state=Code.State.ASSIGNED).count() == 3
    assert Code.objects.filter(book=book, state=Code.State.FREE).count() == 17
    assert BookUser.objects.filter(book=book, user_id="greedy").count() == 1


def test_max_redemptions_per_user_holds_on_one_shared_code(tenant, actor):
    book = CouponBookFactory(
        tenant=tenant, requires_assignment=False, uses_per_code=50, max_codes_per_user=None, max_redemptions_per_user=2
    )
    code = CodeFactory(book=book, code="SHARED50")

    outcomes = run_concurrently(
        [partial(code_redeem, tenant=tenant, code="SHARED50", user_id="greedy", actor=actor) for _ in range(20)]
    )

    assert len(successes(outcomes)) == 2
    assert error_counts(outcomes) == Counter({"user_redemption_limit_reached": 18})
    assert standing_redemptions(book=book, user_id="greedy") == 2
    code.refresh_from_db()
    assert code.redeemed_count == 2


def test_max_redemptions_per_user_holds_across_twenty_codes_of_the_user(tenant, actor):
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=None, max_redemptions_per_user=2)
    codes = CodeFactory.create_batch(20, book=book)
    for code in codes:
        code_assign(tenant=tenant, code=code.code, user_id="greedy", actor=actor)

    outcomes = run_concurrently(
        [partial(code_redeem, tenant=tenant, code=code.code, user_id="greedy", actor=actor) for code in codes]
    )

    assert len(successes(outcomes)) == 2
    assert error_counts(outcomes) == Counter({"user_redemption_limit_reached": 18})
    assert standing_redemptions(book=book, user_id="greedy") == 2
    assert sum(Code.objects.filter(book=book).values_list("redeemed_count", flat=True)) == 2
    assert Code.objects.filter(book=book, state=Code.State.REDEEMED).count() == 2


@pytest.mark.parametrize("shared", [True, False], ids=["one-shared-code", "twenty-assigned-codes"])
def test_max_redemptions_per_user_counts_concurrent_locks_of_one_user(tenant, actor, shared):
    book = CouponBookFactory(
        tenant=tenant,
        requires_assignment=not shared,
        uses_per_code=50 if shared else 1,
        max_codes_per_user=None,
        max_redemptions_per_user=2,
    )
    if shared:
        targets = [CodeFactory(book=book, code="SHARED50").code] * 20
    else:
        targets = [code.code for code in CodeFactory.create_batch(20, book=book)]
        for target in targets:
            code_assign(tenant=tenant, code=target, user_id="greedy", actor=actor)

    outcomes = run_concurrently(
        [partial(code_reserve, tenant=tenant, code=target, user_id="greedy", actor=actor) for target in targets]
    )

    assert len(successes(outcomes)) == 2
    assert error_counts(outcomes) == Counter({"user_redemption_limit_reached": 18})
    assert active_reservations(book=book, user_id="greedy") == 2
    assert Event.objects.filter(book=book, kind=Event.Kind.LOCKED).count() == 2


def test_redeeming_a_reservation_while_the_same_user_locks_more_stays_within_the_user_limit(tenant, actor):
    """The token redeem turns a hold into a redemption; a lock counting both at that moment must see it once.

    Several rounds, because the window (between counting redemptions and counting holds) is narrow.
    """
    for round_no in range(8):
        book = CouponBookFactory(tenant=tenant, max_codes_per_user=None, max_redemptions_per_user=2)
        held, *others = CodeFactory.create_batch(12, book=book)
        for code in [held, *others]:
            code_assign(tenant=tenant, code=code.code, user_id="greedy", actor=actor)
        reservation = code_reserve(tenant=tenant, code=held.code, user_id="greedy", actor=actor)

        calls = [partial(code_reserve, tenant=tenant, code=code.code, user_id="greedy", actor=actor) for code in others]
        calls.insert(
            0, partial(code_redeem, tenant=tenant, code=held.code, user_id="greedy", actor=actor, token=reservation.token)
        )
        outcomes = run_concurrently(calls)

        assert outcomes[0].ok, f"round {round_no}: {outcomes[0]}"
        assert len(successes(outcomes)) == 2, f"round {round_no}: {error_counts(outcomes)}"
        assert error_counts(outcomes) == Counter({"user_redemption_limit_reached": 10})
        assert standing_redemptions(book=book, user_id="greedy") + active_reservations(book=book, user_id="greedy") == 2


# --- 4. Locks on a multi-use code --------------------------------------------------------------------------


def test_twenty_locks_on_a_five_use_code_leave_exactly_five_reservations(tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=5, max_codes_per_user=None)
    code = CodeFactory(book=book, code="FIVEUSES")

    outcomes = run_concurrently(
        [partial(code_reserve, tenant=tenant, code="FIVEUSES", user_id=f"user-{i}", actor=actor) for i in range(20)]
    )

    reservations = successes(outcomes)
    assert len(reservations) == 5
    assert error_counts(outcomes) == Counter({"code_locked": 15})
    rows = Reservation.objects.filter(code=code)
    assert rows.count() == 5
    assert active_reservations(code=code) == 5
    assert sorted(rows.values_list("user_id", flat=True)) == sorted(r.user_id for r in reservations)
    assert Event.objects.filter(code=code, kind=Event.Kind.LOCKED).count() == 5
    code.refresh_from_db()
    assert code.redeemed_count == 0


# --- 5. Lock, redeem, expire and reverse racing each other ----------------------------------------------------


def test_redeem_with_token_and_expiry_of_a_just_expired_reservation_never_both_win(tenant, actor):
    """At the instant a reservation runs out, the redeem's clock may read "still valid" while the expiry task's
    reads "expired". The expiry runs are given a clock just past expires_at to recreate that instant; whichever
    takes the reservation's row lock first wins, and the other must see it and step back (no deadlock either).
    """
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=None, max_redemptions_per_user=None)
    for round_no in range(12):
        code = CodeFactory(book=book)
        code_assign(tenant=tenant, code=code.code, user_id="alice", actor=actor)
        reservation = code_reserve(tenant=tenant, code=code.code, user_id="alice", actor=actor)
        just_after = reservation.expires_at + timedelta(milliseconds=1)

        calls = [partial(reservations_expire, now=just_after), partial(reservations_expire, now=just_after)]
        calls.insert(
            round_no % 3,
            partial(code_redeem, tenant=tenant, code=code.code, user_id="alice", actor=actor, token=reservation.token),
        )
        outcomes = run_concurrently(calls)
        redeem = outcomes[round_no % 3]
        expired = sum(outcome.value for outcome in outcomes if outcome is not redeem)

        reservation.refresh_from_db()
        code.refresh_from_db()
        expiry_events = Event.objects.filter(reservation=reservation, kind=Event.Kind.LOCK_EXPIRED).count()
        if redeem.ok:
            assert (reservation.status, expired, expiry_events) == (Reservation.Status.CONSUMED, 0, 0)
            assert (code.redeemed_count, Redemption.objects.filter(code=code).count()) == (1, 1)
        else:
            assert redeem.error == "reservation_not_active"
            assert (reservation.status, expired, expiry_events) == (Reservation.Status.EXPIRED, 1, 1)
            assert (code.redeemed_count, Redemption.objects.filter(code=code).count()) == (0, 0)


def test_concurrent_redeems_and_reversals_keep_the_count_equal_to_standing_redemptions(tenant, actor):
    book = CouponBookFactory(
        tenant=tenant, requires_assignment=False, uses_per_code=5, max_codes_per_user=None, max_redemptions_per_user=None
    )
    code = CodeFactory(book=book, code="REFUNDS")
    first = [code_redeem(tenant=tenant, code="REFUNDS", user_id=f"early-{i}", actor=actor) for i in range(5)]

    calls = [partial(redemption_reverse, tenant=tenant, redemption_id=r.pk, actor=actor, reason="refund") for r in first[:3]]
    # A second reversal of the same redemption races the first: only one may restore the use.
    calls.append(partial(redemption_reverse, tenant=tenant, redemption_id=first[0].pk, actor=actor, reason="again"))
    calls += [partial(code_redeem, tenant=tenant, code="REFUNDS", user_id=f"late-{i}", actor=actor) for i in range(12)]
    outcomes = run_concurrently(calls)

    reversals, redeems = outcomes[:4], outcomes[4:]
    assert sum(o.ok for o in reversals) == 3
    assert error_counts(reversals) == Counter({"redemption_already_reversed": 1})
    assert set(error_counts(redeems)) <= {"code_exhausted"}
    late_wins = len(successes(redeems))
    assert late_wins <= 3  # never more than the uses the reversals gave back
    code.refresh_from_db()
    assert code.redeemed_count == standing_redemptions(code=code) == 2 + late_wins
    assert Redemption.objects.filter(code=code).count() == 5 + late_wins  # reversed rows stay
    assert Redemption.objects.filter(code=code, reversed_at__isnull=False).count() == 3
    assert Event.objects.filter(code=code, kind=Event.Kind.REVERSED).count() == 3
    assert_code_invariants(book)


def test_a_mix_of_every_operation_on_one_small_book_ends_without_deadlock_and_with_every_invariant(tenant, actor):
    """Eight threads, each a bounded random walk of 25 operations over four users and six codes."""
    book = CouponBookFactory(tenant=tenant, uses_per_code=2, max_codes_per_user=2, max_redemptions_per_user=3)
    CodeFactory.create_batch(6, book=book)
    users = ["ann", "bob", "cy", "dee"]

    def walk(seed: int) -> Counter:
        rng = random.Random(seed)
        done: Counter = Counter()
        for _ in range(25):
            user = rng.choice(users)
            own = list(Code.objects.filter(book=book, user_id=user).values_list("code", flat=True))
            held = list(
                Reservation.objects.filter(book=book, user_id=user, status=Reservation.Status.ACTIVE).values_list(
                    "code__code", "token"
                )
            )
            standing = list(Redemption.objects.filter(book=book, reversed_at__isnull=True).values_list("pk", flat=True))
            op = rng.choice(["assign", "lock", "lock", "unlock", "redeem_token", "redeem_token", "redeem", "reverse", "expire"])
            try:
                if op == "assign":
                    code_assign_random(tenant=tenant, book_id=book.pk, user_id=user, actor=actor)
                elif op == "lock" and own:
                    code_reserve(tenant=tenant, code=rng.choice(own), user_id=user, actor=actor)
                elif op == "unlock" and held:
                    code_value, token = rng.choice(held)
                    code_release(tenant=tenant, code=code_value, user_id=user, actor=actor, token=token)
                elif op == "redeem_token" and held:
                    code_value, token = rng.choice(held)
                    code_redeem(tenant=tenant, code=code_value, user_id=user, actor=actor, token=token)
                elif op == "redeem" and own:
                    code_redeem(tenant=tenant, code=rng.choice(own), user_id=user, actor=actor)
                elif op == "reverse" and standing:
                    redemption_reverse(tenant=tenant, redemption_id=rng.choice(standing), actor=actor)
                elif op == "expire":
                    # Half the runs see a clock past every hold's end, so expiry races the redeems for real.
                    reservations_expire(now=timezone.now() + timedelta(seconds=rng.choice([0, book.lock_ttl_seconds + 1])))
                else:
                    op = "skipped"
            except ApplicationError as exc:
                done[exc.code] += 1
            else:
                done[op] += 1
        return done

    outcomes = run_concurrently([partial(walk, seed) for seed in range(8)])

    done = sum((outcome.value for outcome in outcomes), Counter())
    assert sum(done.values()) == 8 * 25
    assert done["redeem"] + done["redeem_token"] > 0
    assert_code_invariants(book)
    for user in users:
        assert Code.objects.filter(book=book, user_id=user).count() <= 2
        assert standing_redemptions(book=book, user_id=user) + active_reservations(book=book, user_id=user) <= 3
    # Every change left its event: one per redemption, reversal, hold taken and hold expired.
    assert Event.objects.filter(book=book, kind=Event.Kind.REDEEMED).count() == Redemption.objects.filter(book=book).count()
    assert Event.objects.filter(book=book, kind=Event.Kind.REVERSED).count() == (
        Redemption.objects.filter(book=book, reversed_at__isnull=False).count()
    )
    assert Event.objects.filter(book=book, kind=Event.Kind.LOCKED).count() == Reservation.objects.filter(book=book).count()
    assert Event.objects.filter(book=book, kind=Event.Kind.LOCK_EXPIRED).count() == (
        Reservation.objects.filter(book=book, status=Reservation.Status.EXPIRED).count()
    )
    assert not Reservation.objects.filter(Q(status=Reservation.Status.ACTIVE) & Q(ended_at__isnull=False)).exists()


def test_changing_uses_per_code_while_codes_are_redeemed_neither_deadlocks_nor_breaks_the_counts(tenant, actor):
    """book_update locks the book and then its codes; a redeem holds a code and inserts rows that point at the book.

    Several rounds, because the two must meet at the right moment for the lock orders to cross.
    """
    from books.services.books import book_update

    for round_no in range(6):
        book = CouponBookFactory(
            tenant=tenant, requires_assignment=False, uses_per_code=3, max_codes_per_user=None, max_redemptions_per_user=None
        )
        codes = CodeFactory.create_batch(4, book=book)
        calls = [partial(code_redeem, tenant=tenant, code=codes[i % 4].code, user_id=f"user-{i}", actor=actor) for i in range(12)]
        calls.insert(round_no, partial(book_update, book=book, uses_per_code=5))
        outcomes = run_concurrently(calls)

        assert outcomes[round_no].ok, outcomes[round_no]
        assert len(successes(outcomes)) == 13  # 3 uses per code were enough for every redeem
        book.refresh_from_db()
        assert book.uses_per_code == 5
        assert set(Code.objects.filter(book=book).values_list("max_uses", flat=True)) == {5}
        assert standing_redemptions(book=book) == 12
        assert_code_invariants(book)
