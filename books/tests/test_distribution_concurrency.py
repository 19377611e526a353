"""Distribution under concurrency on PostgreSQL: overlapping lists and single assignments at the same moment."""

import random
from collections import Counter
from functools import partial

import pytest

from books.models import Code
from books.services.code_creation import codes_insert
from books.services.codes import code_assign, code_assign_random
from books.services.distribution import codes_distribute
from tests.factories import CouponBookFactory

from .concurrency import error_counts, run_concurrently, successes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def shuffled(values: list[str], seed: int) -> list[str]:
    values = list(values)
    random.Random(seed).shuffle(values)
    return values


def test_overlapping_distributions_and_single_assignments_never_give_a_user_two_codes_or_a_code_twice(tenant, actor):
    # Given a book of one code a user, 300 free codes, three overlapping lists (in different orders), random
    # assignments for users of the overlap, and named assignments of codes the distributions may claim
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=1)
    codes_insert(book=book, codes=[f"CC{i:05d}" for i in range(300)])
    users = [f"user-{i:03d}" for i in range(225)]
    lists = [shuffled(users[0:150], 1), shuffled(users[75:225], 2), shuffled(users[100:200], 3)]
    named = list(Code.objects.filter(book=book).order_by("shuffle").values_list("code", flat=True)[:10])
    calls = [partial(codes_distribute, book=book, user_ids=ids, actor=actor) for ids in lists]
    calls += [partial(code_assign_random, tenant=tenant, book_id=book.pk, user_id=users[i], actor=actor) for i in range(140, 160)]
    calls += [partial(code_assign, tenant=tenant, code=code, user_id=f"named-{n}", actor=actor) for n, code in enumerate(named)]

    # When
    outcomes = run_concurrently(calls)

    # Then every distribution succeeded, and the single calls either won or lost to a distribution cleanly
    assert all(outcome.ok for outcome in outcomes[:3]), outcomes[:3]
    assert set(error_counts(outcomes[3:])) <= {"user_code_limit_reached", "code_already_assigned", "code_not_assignable"}
    held = Counter(Code.objects.filter(book=book, user_id__isnull=False).values_list("user_id", flat=True))
    assert max(held.values()) == 1  # no user holds two codes
    assert set(users) <= set(held)  # every listed user holds one
    assigned = Code.objects.filter(book=book, state=Code.State.ASSIGNED)
    assert assigned.count() == len(held)  # and no code went to two users (one user_id a row)
    final = dict(assigned.values_list("user_id", "code"))
    for result in successes(outcomes[:3]):
        assert {status for _, _, status in result.rows} <= {"assigned", "already_assigned"}
        assert all(final[user_id] == code for user_id, code, _ in result.rows)  # what each run reported stands
    # Each user was given a code by exactly one of the calls.
    given = sum(result.assigned for result in successes(outcomes[:3]))
    given += sum(1 for outcome in outcomes[3:] if outcome.ok)
    assert given == len(held)


def test_the_same_list_distributed_twice_at_once_assigns_each_user_once(tenant, actor):
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=None)  # the rule holds even with no per-user limit
    codes_insert(book=book, codes=[f"TW{i:05d}" for i in range(100)])
    users = [f"u{i}" for i in range(60)]

    outcomes = run_concurrently(
        [partial(codes_distribute, book=book, user_ids=shuffled(users, s), actor=actor) for s in range(4)]
    )

    results = successes(outcomes)
    assert len(results) == 4
    assert sum(result.assigned for result in results) == 60
    held = Counter(Code.objects.filter(book=book, user_id__isnull=False).values_list("user_id", flat=True))
    assert set(held) == set(users) and set(held.values()) == {1}
