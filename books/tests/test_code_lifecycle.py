"""The code lifecycle at the service layer: assign (random, specific), lock, unlock, void, unassign, lock expiry.

Each test states its given, when and then, and asserts the rows in the database, not what was called.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from books.models import BookUser, Code, CouponBook, Event, Reservation
from books.services.code_creation import codes_upload
from books.services.codes import (
    code_assign,
    code_assign_random,
    code_redeem,
    code_release,
    code_reserve,
    code_unassign,
    code_void,
    reservations_expire,
)
from core.actors import Actor
from redemptions.models import Redemption
from tests.factories import (
    AssignedCodeFactory,
    CodeFactory,
    CouponBookFactory,
    ReservationFactory,
    SharedBookFactory,
    refused,
    rows_snapshot,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now


def events_of(code: Code) -> list[str]:
    return list(Event.objects.filter(code=code).order_by("created_at", "pk").values_list("kind", flat=True))


# --- Assign random --------------------------------------------------------------------------------------------


def test_assign_random_gives_a_free_code_and_records_the_event(tenant, book):
    # Given
    CodeFactory.create_batch(3, book=book)
    api = Actor(kind=Actor.API_CLIENT, id="cli_shop")
    # When
    code = code_assign_random(tenant=tenant, book_id=book.pk, user_id="ann", actor=api)
    # Then
    stored = Code.objects.get(pk=code.pk)
    assert (stored.state, stored.user_id) == (Code.State.ASSIGNED, "ann")
    assert stored.assigned_at is not None
    assert (code.state, code.user_id) == (stored.state, stored.user_id)
    assert Code.objects.filter(book=book, state=Code.State.FREE).count() == 2
    event = Event.objects.get(code=stored)
    assert (event.kind, event.user_id, event.actor_type, event.actor_id) == ("assigned", "ann", "api_client", "cli_shop")
    assert event.data == {"random": True}


def deciles_hit(positions: list[int], size: int) -> int:
    """How many tenths of an order of `size` rows the positions fall in."""
    return len({position * 10 // size for position in positions})


def test_assign_random_picks_across_the_whole_book_in_any_order(tenant, actor):
    """40 of 200 codes assigned at random land in most tenths of both the upload order and the shuffle order.

    A walk from the start of either order would put all 40 in its first two tenths. For uniform picks, hitting
    fewer than 8 of the 10 tenths has a probability of about 1e-5 at most (union bound over the 120 choices of
    3 empty tenths: 120 x C(140, 40) / C(200, 40)).
    """
    # Given: 200 codes uploaded in a known order
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=None)
    created = [f"ORDER{n:03d}" for n in range(200)]
    codes_upload(book=book, codes=created, actor=actor)
    shuffle_order = list(Code.objects.filter(book=book).order_by("shuffle", "pk").values_list("code", flat=True))
    # When: 40 are assigned, one call each
    assigned = [code_assign_random(tenant=tenant, book_id=book.pk, user_id=f"u{n}", actor=actor).code for n in range(40)]
    # Then: 40 distinct codes, spread over both orders
    assert len(set(assigned)) == 40
    assert deciles_hit([created.index(code) for code in assigned], 200) >= 8
    assert deciles_hit([shuffle_order.index(code) for code in assigned], 200) >= 8
    assert Code.objects.filter(book=book, state=Code.State.ASSIGNED).count() == 40


def test_assign_random_never_picks_a_voided_or_assigned_code(tenant, book, actor):
    # Given: one free code among voided and assigned ones
    CodeFactory(book=book, code="VOID1", state=Code.State.VOIDED)
    AssignedCodeFactory(book=book, code="TAKEN1", user_id="bob")
    CodeFactory(book=book, code="FREE1")
    # When
    code = code_assign_random(tenant=tenant, book_id=book.pk, user_id="ann", actor=actor)
    # Then
    assert code.code == "FREE1"
    refused("book_exhausted", code_assign_random, tenant=tenant, book_id=book.pk, user_id="cid", actor=actor)


def test_assign_random_from_an_exhausted_book_is_refused(tenant, book, actor):
    # Given
    CodeFactory.create_batch(2, book=book)
    code_assign_random(tenant=tenant, book_id=book.pk, user_id="a", actor=actor)
    code_assign_random(tenant=tenant, book_id=book.pk, user_id="b", actor=actor)
    # When / Then
    refused("book_exhausted", code_assign_random, tenant=tenant, book_id=book.pk, user_id="c", actor=actor)
    # An empty book too.
    empty = CouponBookFactory(tenant=tenant)
    refused("book_exhausted", code_assign_random, tenant=tenant, book_id=empty.pk, user_id="c", actor=actor)


@pytest.mark.parametrize("limit", [1, 2])
def test_assign_random_stops_at_max_codes_per_user(tenant, actor, limit):
    # Given
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=limit)
    CodeFactory.create_batch(5, book=book)
    for _ in range(limit):
        code_assign_random(tenant=tenant, book_id=book.pk, user_id="ann", actor=actor)
    # When / Then
    error = refused("user_code_limit_reached", code_assign_random, tenant=tenant, book_id=book.pk, user_id="ann", actor=actor)
    assert error.details == {"limit": limit}
    assert Code.objects.filter(book=book, user_id="ann").count() == limit
    # Another user is not affected, nor is the same user in another book.
    code_assign_random(tenant=tenant, book_id=book.pk, user_id="bob", actor=actor)
    other = CouponBookFactory(tenant=tenant)
    CodeFactory(book=other)
    code_assign_random(tenant=tenant, book_id=other.pk, user_id="ann", actor=actor)


def test_a_null_max_codes_per_user_is_unlimited(tenant, actor):
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=None)
    CodeFactory.create_batch(6, book=book)
    for _ in range(6):
        code_assign_random(tenant=tenant, book_id=book.pk, user_id="ann", actor=actor)
    assert Code.objects.filter(book=book, user_id="ann", state=Code.State.ASSIGNED).count() == 6


def test_a_voided_code_does_not_count_against_max_codes_per_user(tenant, book, actor):
    # Given: the user's only code was voided
    CodeFactory(book=book, code="SECOND")
    AssignedCodeFactory(book=book, code="LEAKED", user_id="ann")
    code_void(tenant=tenant, code="LEAKED", actor=actor)
    # When
    code = code_assign_random(tenant=tenant, book_id=book.pk, user_id="ann", actor=actor)
    # Then
    assert code.code == "SECOND"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"status": CouponBook.Status.DRAFT}, "book_not_active"),
        ({"status": CouponBook.Status.PAUSED}, "book_not_active"),
        ({"status": CouponBook.Status.ARCHIVED}, "book_archived"),
        ({"valid_until": timezone.now() - timedelta(minutes=1)}, "book_expired"),
    ],
)
def test_assign_from_a_book_that_is_not_open_is_refused(tenant, actor, fields, error):
    book = CouponBookFactory(tenant=tenant, **fields)
    CodeFactory(book=book, code="CLOSED1")
    refused(error, code_assign_random, tenant=tenant, book_id=book.pk, user_id="ann", actor=actor)
    refused(error, code_assign, tenant=tenant, code="CLOSED1", user_id="ann", actor=actor)


def test_codes_may_be_assigned_before_the_book_starts(tenant, actor):
    # Documented choice: "your code for next week's sale" is handed out before valid_from.
    book = CouponBookFactory(tenant=tenant, valid_from=timezone.now() + timedelta(days=7))
    CodeFactory(book=book, code="EARLY1")
    code = code_assign_random(tenant=tenant, book_id=book.pk, user_id="ann", actor=actor)
    assert code.code == "EARLY1"


def test_assign_random_from_another_tenants_book_is_not_found(tenant, other_tenant, actor):
    foreign = CouponBookFactory(tenant=other_tenant)
    CodeFactory(book=foreign)
    refused("book_not_found", code_assign_random, tenant=tenant, book_id=foreign.pk, user_id="ann", actor=actor)
    refused("book_not_found", code_assign_random, tenant=tenant, book_id=foreign.pk + 1000, user_id="ann", actor=actor)


# --- Assign specific ------------------------------------------------------------------------------------------


def test_assign_specific_matches_the_code_case_insensitively(tenant, book, actor):
    # Given
    CodeFactory(book=book, code="NAMED-1")
    # When
    code, assigned_now = code_assign(tenant=tenant, code="  named-1 ", user_id="ann", actor=actor)
    # Then
    assert assigned_now is True
    stored = Code.objects.get(code="NAMED-1")
    assert (stored.state, stored.user_id) == (Code.State.ASSIGNED, "ann")
    assert events_of(stored) == ["assigned"]


def test_assign_specific_of_a_code_held_by_another_user_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="HELD1", user_id="bob")
    refused("code_already_assigned", code_assign, tenant=tenant, code="HELD1", user_id="ann", actor=actor)
    assert Code.objects.get(code="HELD1").user_id == "bob"


def test_assign_specific_is_idempotent_for_the_same_user(tenant, book, actor):
    # Given
    CodeFactory(book=book, code="AGAIN1")
    code_assign(tenant=tenant, code="AGAIN1", user_id="ann", actor=actor)
    before = rows_snapshot()
    # When
    code, assigned_now = code_assign(tenant=tenant, code="again1", user_id="ann", actor=actor)
    # Then: the same answer, and no second event
    assert (code.code, code.user_id, assigned_now) == ("AGAIN1", "ann", False)
    assert rows_snapshot() == before
    assert events_of(code) == ["assigned"]


def test_assign_specific_of_a_voided_code_is_refused(tenant, book, actor):
    CodeFactory(book=book, code="VOIDED1", state=Code.State.VOIDED)
    refused("code_voided", code_assign, tenant=tenant, code="VOIDED1", user_id="ann", actor=actor)
    # Even for the user who held it.
    AssignedCodeFactory(book=book, code="VOIDED2", user_id="ann", state=Code.State.VOIDED)
    refused("code_voided", code_assign, tenant=tenant, code="VOIDED2", user_id="ann", actor=actor)


def test_assign_specific_of_another_tenants_code_is_not_found(tenant, other_tenant, actor):
    CodeFactory(book=CouponBookFactory(tenant=other_tenant), code="FOREIGN1")
    error = refused("code_not_found", code_assign, tenant=tenant, code="FOREIGN1", user_id="ann", actor=actor)
    assert error.details == {"code": "FOREIGN1"}


def test_assign_specific_respects_max_codes_per_user(tenant, book, actor):
    AssignedCodeFactory(book=book, code="FIRST1", user_id="ann")
    CodeFactory(book=book, code="SECOND1")
    refused("user_code_limit_reached", code_assign, tenant=tenant, code="SECOND1", user_id="ann", actor=actor)


def test_assign_specific_of_a_used_up_shared_code_is_refused(tenant, actor):
    book = SharedBookFactory(tenant=tenant, uses_per_code=1)
    CodeFactory(book=book, code="USEDUP1")
    code_redeem(tenant=tenant, code="USEDUP1", user_id="bob", actor=actor)
    refused("code_not_assignable", code_assign, tenant=tenant, code="USEDUP1", user_id="ann", actor=actor)


# --- Lock -----------------------------------------------------------------------------------------------------


def test_lock_by_the_assignee_holds_one_use_until_expiry(tenant, book, actor):
    # Given
    code = AssignedCodeFactory(book=book, code="LOCK1", user_id="ann")
    before = timezone.now()
    # When
    reservation = code_reserve(tenant=tenant, code="lock1", user_id="ann", actor=actor, ttl_seconds=60)
    # Then
    stored = Reservation.objects.get(pk=reservation.pk)
    assert (stored.code_id, stored.book_id, stored.tenant_id, stored.user_id) == (code.pk, book.pk, tenant.pk, "ann")
    assert stored.status == Reservation.Status.ACTIVE
    assert len(stored.token) >= 24
    assert before + timedelta(seconds=60) <= stored.expires_at <= timezone.now() + timedelta(seconds=60)
    event = Event.objects.get(code=code)
    assert (event.kind, event.user_id, event.reservation_id) == ("locked", "ann", stored.pk)
    # The code itself is unchanged: a lock holds a use, it does not consume it.
    code.refresh_from_db()
    assert (code.state, code.redeemed_count) == (Code.State.ASSIGNED, 0)


def test_lock_uses_the_books_ttl_by_default(tenant, actor):
    book = CouponBookFactory(tenant=tenant, lock_ttl_seconds=120)
    AssignedCodeFactory(book=book, code="TTL1", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="TTL1", user_id="ann", actor=actor)
    left = (reservation.expires_at - timezone.now()).total_seconds()
    assert 110 < left <= 120


@pytest.mark.parametrize("ttl", [10, 3600, 45])
def test_lock_accepts_a_ttl_within_bounds(tenant, book, actor, ttl):
    AssignedCodeFactory(book=book, code="TTL3", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="TTL3", user_id="ann", actor=actor, ttl_seconds=ttl)
    assert abs((reservation.expires_at - timezone.now()).total_seconds() - int(ttl)) < 5


def test_only_the_assignee_may_lock(tenant, book, actor):
    AssignedCodeFactory(book=book, code="MINE1", user_id="ann")
    CodeFactory(book=book, code="NOBODY1")
    refused("code_not_assigned_to_user", code_reserve, tenant=tenant, code="MINE1", user_id="bob", actor=actor)
    refused("code_not_assigned_to_user", code_reserve, tenant=tenant, code="NOBODY1", user_id="bob", actor=actor)


def test_a_shared_code_may_be_locked_by_anyone(tenant, actor):
    # Given: a shared code with three uses
    book = SharedBookFactory(tenant=tenant, uses_per_code=3)
    CodeFactory(book=book, code="SUMMER24")
    # When
    for user in ("ann", "bob", "cid"):
        code_reserve(tenant=tenant, code="summer24", user_id=user, actor=actor)
    # Then: three holds, and a fourth finds every use reserved
    assert Reservation.objects.filter(code__code="SUMMER24", status="active").count() == 3
    refused("code_locked", code_reserve, tenant=tenant, code="SUMMER24", user_id="dan", actor=actor)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"status": CouponBook.Status.PAUSED}, "book_not_active"),
        ({"status": CouponBook.Status.DRAFT}, "book_not_active"),
        ({"status": CouponBook.Status.ARCHIVED}, "book_archived"),
        ({"valid_from": timezone.now() + timedelta(hours=1)}, "book_not_started"),
        ({"valid_until": timezone.now() - timedelta(seconds=1)}, "book_expired"),
    ],
)
def test_lock_needs_an_open_book(tenant, actor, fields, error):
    book = CouponBookFactory(tenant=tenant, **fields)
    AssignedCodeFactory(book=book, code="OPEN1", user_id="ann")
    refused(error, code_reserve, tenant=tenant, code="OPEN1", user_id="ann", actor=actor)


def test_a_codes_own_expiry_overrides_the_books(tenant, actor):
    # Given: a book still running, a code of it already expired
    book = CouponBookFactory(tenant=tenant, valid_until=timezone.now() + timedelta(days=1))
    AssignedCodeFactory(book=book, code="OWNEXP1", user_id="ann", expires_at=timezone.now() - timedelta(seconds=1))
    refused("code_expired", code_reserve, tenant=tenant, code="OWNEXP1", user_id="ann", actor=actor)
    # Given: a book that has ended, a code of it extended
    ended = CouponBookFactory(tenant=tenant, valid_until=timezone.now() - timedelta(days=1))
    AssignedCodeFactory(book=ended, code="EXTENDED1", user_id="ann", expires_at=timezone.now() + timedelta(days=1))
    # When / Then: the code's own expiry wins
    reservation = code_reserve(tenant=tenant, code="EXTENDED1", user_id="ann", actor=actor)
    assert reservation.status == Reservation.Status.ACTIVE


def test_lock_of_a_single_use_code_already_held_is_refused(tenant, actor):
    book = CouponBookFactory(tenant=tenant, max_redemptions_per_user=None)
    AssignedCodeFactory(book=book, code="HELD2", user_id="ann")
    code_reserve(tenant=tenant, code="HELD2", user_id="ann", actor=actor)
    refused("code_locked", code_reserve, tenant=tenant, code="HELD2", user_id="ann", actor=actor)


def test_lock_of_a_used_up_code_is_refused(tenant, actor):
    book = CouponBookFactory(tenant=tenant, max_redemptions_per_user=None)
    AssignedCodeFactory(book=book, code="USED2", user_id="ann")
    code_redeem(tenant=tenant, code="USED2", user_id="ann", actor=actor)
    refused("code_exhausted", code_reserve, tenant=tenant, code="USED2", user_id="ann", actor=actor)


def test_lock_of_a_voided_code_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="GONE1", user_id="ann", state=Code.State.VOIDED)
    refused("code_voided", code_reserve, tenant=tenant, code="GONE1", user_id="ann", actor=actor)


def test_the_users_active_reservations_count_against_max_redemptions_per_user(tenant, actor):
    # Given: shared codes, one redemption per user in the book
    book = SharedBookFactory(tenant=tenant, max_redemptions_per_user=1)
    CodeFactory(book=book, code="PROMO-A")
    CodeFactory(book=book, code="PROMO-B")
    code_reserve(tenant=tenant, code="PROMO-A", user_id="ann", actor=actor)
    # When / Then: the hold on A already uses the user's one redemption
    error = refused("user_redemption_limit_reached", code_reserve, tenant=tenant, code="PROMO-B", user_id="ann", actor=actor)
    assert error.details == {"limit": 1, "redeemed": 0, "reserved": 1}
    # Another user is fine.
    code_reserve(tenant=tenant, code="PROMO-B", user_id="bob", actor=actor)


def test_redemptions_and_holds_add_up_against_max_redemptions_per_user(tenant, actor):
    book = SharedBookFactory(tenant=tenant, max_redemptions_per_user=2)
    CodeFactory(book=book, code="TWICE")
    code_redeem(tenant=tenant, code="TWICE", user_id="ann", actor=actor)
    code_reserve(tenant=tenant, code="TWICE", user_id="ann", actor=actor)
    error = refused("user_redemption_limit_reached", code_reserve, tenant=tenant, code="TWICE", user_id="ann", actor=actor)
    assert error.details == {"limit": 2, "redeemed": 1, "reserved": 1}


def test_an_expired_reservation_stops_counting_at_once(tenant, actor):
    # Given: a single-use code locked by its user, the hold past its time, no expiry task run
    book = CouponBookFactory(tenant=tenant, max_redemptions_per_user=1)
    AssignedCodeFactory(book=book, code="LAPSED1", user_id="ann")
    first = code_reserve(tenant=tenant, code="LAPSED1", user_id="ann", actor=actor)
    Reservation.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # When: the user locks again (neither code_locked nor user_redemption_limit_reached)
    second = code_reserve(tenant=tenant, code="LAPSED1", user_id="ann", actor=actor)
    # Then: the first row is still "active" in the table, yet no longer counts
    assert Reservation.objects.get(pk=first.pk).status == Reservation.Status.ACTIVE
    assert second.status == Reservation.Status.ACTIVE
    # And a shared code with one use: another user's lapsed hold frees the use for someone else.
    shared = SharedBookFactory(tenant=tenant, uses_per_code=1)
    CodeFactory(book=shared, code="LAPSED2")
    held = code_reserve(tenant=tenant, code="LAPSED2", user_id="bob", actor=actor)
    Reservation.objects.filter(pk=held.pk).update(expires_at=timezone.now())
    code_reserve(tenant=tenant, code="LAPSED2", user_id="cid", actor=actor)


# --- Unlock ---------------------------------------------------------------------------------------------------


def test_unlock_by_token_releases_that_reservation_at_once(tenant, book, actor):
    # Given
    AssignedCodeFactory(book=book, code="UNL1", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="UNL1", user_id="ann", actor=actor)
    # When
    released = code_release(tenant=tenant, code="unl1", user_id="ann", actor=actor, token=reservation.token)
    # Then
    assert released == 1
    stored = Reservation.objects.get(pk=reservation.pk)
    assert stored.status == Reservation.Status.RELEASED
    assert stored.ended_at is not None
    assert events_of(stored.code) == ["locked", "unlocked"]
    # The use is free again at once.
    code_reserve(tenant=tenant, code="UNL1", user_id="ann", actor=actor)


def test_unlock_without_a_token_releases_all_of_the_users_holds_on_the_code(tenant, actor):
    # Given: a shared code held twice by ann and once by bob
    book = SharedBookFactory(tenant=tenant, uses_per_code=5)
    CodeFactory(book=book, code="MANY1")
    mine = [code_reserve(tenant=tenant, code="MANY1", user_id="ann", actor=actor) for _ in range(2)]
    bobs = code_reserve(tenant=tenant, code="MANY1", user_id="bob", actor=actor)
    # When
    released = code_release(tenant=tenant, code="MANY1", user_id="ann", actor=actor)
    # Then
    assert released == 2
    assert {r.status for r in Reservation.objects.filter(pk__in=[r.pk for r in mine])} == {"released"}
    assert Reservation.objects.get(pk=bobs.pk).status == Reservation.Status.ACTIVE
    assert Event.objects.filter(kind="unlocked", user_id="ann").count() == 2


def test_unlock_with_a_wrong_token_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="UNL2", user_id="ann")
    code_reserve(tenant=tenant, code="UNL2", user_id="ann", actor=actor)
    refused("reservation_not_found", code_release, tenant=tenant, code="UNL2", user_id="ann", actor=actor, token="nope")


def test_unlock_of_another_users_reservation_is_refused(tenant, actor):
    book = SharedBookFactory(tenant=tenant, uses_per_code=2)
    CodeFactory(book=book, code="UNL3")
    bobs = code_reserve(tenant=tenant, code="UNL3", user_id="bob", actor=actor)
    refused("reservation_not_found", code_release, tenant=tenant, code="UNL3", user_id="ann", actor=actor, token=bobs.token)
    # Without a token, ann has nothing to release, and bob's hold stays.
    assert code_release(tenant=tenant, code="UNL3", user_id="ann", actor=actor) == 0
    assert Reservation.objects.get(pk=bobs.pk).status == Reservation.Status.ACTIVE


def test_unlock_of_a_reservation_already_released_is_a_no_op(tenant, book, actor):
    AssignedCodeFactory(book=book, code="UNL4", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="UNL4", user_id="ann", actor=actor)
    code_release(tenant=tenant, code="UNL4", user_id="ann", actor=actor, token=reservation.token)
    before = rows_snapshot()
    assert code_release(tenant=tenant, code="UNL4", user_id="ann", actor=actor, token=reservation.token) == 0
    assert rows_snapshot() == before


def test_unlock_of_a_consumed_reservation_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="UNL5", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="UNL5", user_id="ann", actor=actor)
    code_redeem(tenant=tenant, code="UNL5", user_id="ann", actor=actor, token=reservation.token)
    refused(
        "reservation_not_active", code_release, tenant=tenant, code="UNL5", user_id="ann", actor=actor, token=reservation.token
    )
    assert Reservation.objects.get(pk=reservation.pk).status == Reservation.Status.CONSUMED


def test_unlock_of_a_lapsed_reservation_marks_it_expired_once(tenant, book, actor):
    AssignedCodeFactory(book=book, code="UNL6", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="UNL6", user_id="ann", actor=actor)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert code_release(tenant=tenant, code="UNL6", user_id="ann", actor=actor, token=reservation.token) == 0
    assert Reservation.objects.get(pk=reservation.pk).status == Reservation.Status.EXPIRED
    assert reservations_expire() == 0
    assert Event.objects.filter(reservation=reservation, kind="lock_expired").count() == 1


# --- Lock expiry ----------------------------------------------------------------------------------------------


def test_the_expiry_task_marks_lapsed_reservations_once_and_records_their_events(tenant, book):
    # Given: one lapsed hold, one still running
    lapsed = ReservationFactory(code=AssignedCodeFactory(book=book), expires_at=timezone.now() - timedelta(seconds=5))
    running = ReservationFactory(code=AssignedCodeFactory(book=book, user_id="bob"), user_id="bob")
    # When: run twice
    assert reservations_expire() == 1
    assert reservations_expire() == 0
    # Then
    assert Reservation.objects.get(pk=lapsed.pk).status == Reservation.Status.EXPIRED
    assert Reservation.objects.get(pk=running.pk).status == Reservation.Status.ACTIVE
    event = Event.objects.get(kind="lock_expired")
    assert (event.reservation_id, event.user_id, event.actor_type) == (lapsed.pk, "user-1", Actor.SYSTEM)


# --- Void and unassign ----------------------------------------------------------------------------------------


def test_void_releases_reservations_blocks_the_code_and_keeps_redemptions(tenant, actor):
    # Given: a shared code redeemed once and held once
    book = SharedBookFactory(tenant=tenant, uses_per_code=5)
    CodeFactory(book=book, code="LEAKED1")
    redemption = code_redeem(tenant=tenant, code="LEAKED1", user_id="ann", actor=actor)
    hold = code_reserve(tenant=tenant, code="LEAKED1", user_id="bob", actor=actor)
    staff = Actor(kind=Actor.STAFF, id="7")
    # When
    code = code_void(tenant=tenant, code="leaked1", actor=staff, reason="posted on a forum")
    # Then
    stored = Code.objects.get(pk=code.pk)
    assert (stored.state, stored.redeemed_count) == (Code.State.VOIDED, 1)
    assert Reservation.objects.get(pk=hold.pk).status == Reservation.Status.RELEASED
    assert Redemption.objects.filter(pk=redemption.pk, reversed_at__isnull=True).exists()
    event = Event.objects.get(code=stored, kind="voided")
    assert (event.actor_type, event.actor_id, event.data) == ("staff", "7", {"reason": "posted on a forum"})
    # The code can no longer be locked or redeemed, with or without the old token.
    refused("code_voided", code_reserve, tenant=tenant, code="LEAKED1", user_id="cid", actor=actor)
    refused("code_voided", code_redeem, tenant=tenant, code="LEAKED1", user_id="cid", actor=actor)
    refused("reservation_not_active", code_redeem, tenant=tenant, code="LEAKED1", user_id="bob", actor=actor, token=hold.token)


def test_void_of_a_voided_code_changes_nothing(tenant, book, actor):
    CodeFactory(book=book, code="TWICEVOID")
    code_void(tenant=tenant, code="TWICEVOID", actor=actor)
    before = rows_snapshot()
    assert code_void(tenant=tenant, code="TWICEVOID", actor=actor).state == Code.State.VOIDED
    assert rows_snapshot() == before


def test_unassign_returns_an_unused_code_to_the_free_pool(tenant, book, actor):
    # Given
    AssignedCodeFactory(book=book, code="BACK1", user_id="ann")
    hold = code_reserve(tenant=tenant, code="BACK1", user_id="ann", actor=actor)
    # When
    code = code_unassign(tenant=tenant, code="BACK1", actor=actor)
    # Then
    stored = Code.objects.get(pk=code.pk)
    assert (stored.state, stored.user_id, stored.assigned_at) == (Code.State.FREE, None, None)
    assert Reservation.objects.get(pk=hold.pk).status == Reservation.Status.RELEASED
    assert Event.objects.get(code=stored, kind="unassigned").user_id == "ann"
    # It can be handed out again.
    assert code_assign_random(tenant=tenant, book_id=book.pk, user_id="bob", actor=actor).code == "BACK1"


def test_unassign_of_a_free_or_redeemed_code_is_refused(tenant, book, actor):
    CodeFactory(book=book, code="FREE9")
    AssignedCodeFactory(book=book, code="USED9", user_id="ann")
    code_redeem(tenant=tenant, code="USED9", user_id="ann", actor=actor)
    refused("code_not_assignable", code_unassign, tenant=tenant, code="FREE9", actor=actor)
    refused("code_not_assignable", code_unassign, tenant=tenant, code="USED9", actor=actor)


# --- Events ---------------------------------------------------------------------------------------------------


def test_every_state_change_writes_its_event_with_actor_and_user(tenant, actor):
    # Given
    book = CouponBookFactory(tenant=tenant, max_redemptions_per_user=None, uses_per_code=2)
    CodeFactory(book=book, code="STORY1")
    api = Actor(kind=Actor.API_CLIENT, id="cli_1")
    end_user = Actor.end_user("ann")
    staff = Actor(kind=Actor.STAFF, id="3")
    # When: the whole life of a code
    code_assign(tenant=tenant, code="STORY1", user_id="ann", actor=api)
    first = code_reserve(tenant=tenant, code="STORY1", user_id="ann", actor=end_user)
    code_release(tenant=tenant, code="STORY1", user_id="ann", actor=end_user, token=first.token)
    second = code_reserve(tenant=tenant, code="STORY1", user_id="ann", actor=api)
    redemption = code_redeem(tenant=tenant, code="STORY1", user_id="ann", actor=api, token=second.token)
    from books.services.codes import redemption_reverse

    redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=staff, reason="refund")
    code_void(tenant=tenant, code="STORY1", actor=staff)
    # Then
    rows = list(
        Event.objects.filter(code__code="STORY1")
        .order_by("created_at", "pk")
        .values_list("kind", "actor_type", "actor_id", "user_id", "reservation_id", "tenant_id", "book_id")
    )
    assert rows == [
        ("assigned", "api_client", "cli_1", "ann", None, tenant.pk, book.pk),
        ("locked", "end_user", "ann", "ann", first.pk, tenant.pk, book.pk),
        ("unlocked", "end_user", "ann", "ann", first.pk, tenant.pk, book.pk),
        ("locked", "api_client", "cli_1", "ann", second.pk, tenant.pk, book.pk),
        ("redeemed", "api_client", "cli_1", "ann", second.pk, tenant.pk, book.pk),
        ("reversed", "staff", "3", "ann", None, tenant.pk, book.pk),
        ("voided", "staff", "3", "ann", None, tenant.pk, book.pk),
    ]


# --- Bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["NOSUCH", "no such", "", "ab", "x" * 65, "ÄÖÜ123"])
def test_an_unknown_code_is_not_found_by_every_service(tenant, book, actor, code):
    AssignedCodeFactory(book=book, code="REAL1", user_id="ann")
    for call, kwargs in [
        (code_assign, {"user_id": "ann"}),
        (code_reserve, {"user_id": "ann"}),
        (code_release, {"user_id": "ann"}),
        (code_redeem, {"user_id": "ann"}),
        (code_void, {}),
        (code_unassign, {}),
    ]:
        refused("code_not_found", call, tenant=tenant, code=code, actor=actor, **kwargs)


@pytest.mark.parametrize("code", [None, 123, ["REAL1"], b"REAL1"])
def test_a_code_that_is_not_a_string_is_refused_by_every_service(tenant, book, actor, code):
    AssignedCodeFactory(book=book, code="REAL2", user_id="ann")
    for call, kwargs in [
        (code_assign, {"user_id": "ann"}),
        (code_reserve, {"user_id": "ann"}),
        (code_release, {"user_id": "ann"}),
        (code_redeem, {"user_id": "ann"}),
        (code_void, {}),
        (code_unassign, {}),
    ]:
        refused("invalid_input", call, tenant=tenant, code=code, actor=actor, **kwargs)


def test_another_tenants_code_is_not_found_by_every_service(tenant, other_tenant, actor):
    foreign = AssignedCodeFactory(book=CouponBookFactory(tenant=other_tenant), code="THEIRS1", user_id="ann")
    for call, kwargs in [
        (code_assign, {"user_id": "ann"}),
        (code_reserve, {"user_id": "ann"}),
        (code_release, {"user_id": "ann"}),
        (code_redeem, {"user_id": "ann"}),
        (code_void, {}),
        (code_unassign, {}),
    ]:
        refused("code_not_found", call, tenant=tenant, code="THEIRS1", actor=actor, **kwargs)
    assert Code.objects.get(pk=foreign.pk).state == Code.State.ASSIGNED


def test_the_user_lock_row_is_created_only_by_services_that_change_data(tenant, book, actor):
    AssignedCodeFactory(book=book, code="ROW1", user_id="ann")
    code_reserve(tenant=tenant, code="ROW1", user_id="ann", actor=actor)
    assert BookUser.objects.filter(book=book, user_id="ann").count() == 1
    # A second claim reuses the row.
    code_release(tenant=tenant, code="ROW1", user_id="ann", actor=actor)
    code_reserve(tenant=tenant, code="ROW1", user_id="ann", actor=actor)
    assert BookUser.objects.filter(book=book, user_id="ann").count() == 1
