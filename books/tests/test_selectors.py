"""Selectors: validate (a dry run of redeem), a user's codes, book statistics, a code's history, look-ups."""

import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from books.models import Code, CouponBook
from books.selectors import book_get, book_stats, code_get, code_history, code_validate, codes_of_user
from books.services.codes import code_assign, code_redeem, code_release, code_reserve, code_void, redemption_reverse
from core.exceptions import ApplicationError
from redemptions.models import Redemption
from tests.factories import (
    AssignedCodeFactory,
    CodeFactory,
    CouponBookFactory,
    RedemptionFactory,
    ReservationFactory,
    SharedBookFactory,
    TenantFactory,
    rows_snapshot,
)

pytestmark = pytest.mark.django_db


def raises(error_code: str, call, /, **kwargs) -> ApplicationError:
    before = rows_snapshot()
    with pytest.raises(ApplicationError) as caught:
        call(**kwargs)
    assert caught.value.code == error_code, caught.value
    assert rows_snapshot() == before
    return caught.value


def validate_unchanged(**kwargs):
    """Validate, and check that it changed no row (counts and every field of every code identical)."""
    before = rows_snapshot()
    result = code_validate(**kwargs)
    assert rows_snapshot() == before
    return result


# --- Validate -------------------------------------------------------------------------------------------------


def test_validate_answers_valid_with_the_discount(tenant, book):
    AssignedCodeFactory(book=book, code="VALID1", user_id="ann")
    result = validate_unchanged(tenant=tenant, code=" valid1 ", user_id="ann", amount=Decimal("45.50"), currency="EUR")
    assert (result.valid, result.reason, result.discount) == (True, "ok", Decimal("4.55"))


def test_validate_of_a_fixed_discount_caps_it_at_the_amount(tenant):
    book = CouponBookFactory(tenant=tenant, discount_type="fixed", discount_value=20, currency="USD", product_ids=["p1"])
    AssignedCodeFactory(book=book, code="FIXED2", user_id="ann")
    result = validate_unchanged(tenant=tenant, code="FIXED2", user_id="ann", amount=Decimal(12), currency="USD", product_id="p1")
    assert (result.valid, result.discount, result.currency) == (True, Decimal("12.00"), "USD")


def test_validate_answers_currency_mismatch_as_redeem_would(tenant, actor):
    book = CouponBookFactory(tenant=tenant, discount_type="fixed", discount_value=5, currency="USD")
    AssignedCodeFactory(book=book, code="FIXED3", user_id="ann")
    result = validate_unchanged(tenant=tenant, code="FIXED3", user_id="ann", amount=Decimal(12), currency="EUR")
    assert (result.valid, result.reason, result.discount, result.currency) == (False, "currency_mismatch", None, "")
    raises("currency_mismatch", code_redeem, tenant=tenant, code="FIXED3", user_id="ann", actor=actor, amount=12, currency="EUR")
    # Without an amount there is no order currency to compare: the book's own applies.
    result = validate_unchanged(tenant=tenant, code="FIXED3", user_id="ann")
    assert (result.valid, result.discount, result.currency) == (True, Decimal("5.00"), "USD")


def test_validate_for_a_user_holding_their_own_reservation_is_valid(tenant, book, actor):
    # Given: the single use is held by the user asking
    AssignedCodeFactory(book=book, code="MYHOLD", user_id="ann")
    code_reserve(tenant=tenant, code="MYHOLD", user_id="ann", actor=actor)
    # When / Then: their redeem-with-token would succeed, so the answer is valid
    result = validate_unchanged(tenant=tenant, code="MYHOLD", user_id="ann", amount=Decimal(10), currency="EUR")
    assert (result.valid, result.reason, result.discount) == (True, "ok", Decimal("1.00"))


def _actor():
    from core.actors import Actor

    return Actor.system("test")


def _setup_failing_case(tenant, case):
    """Build the situation in which redeem would refuse with `case`; return (code, user_id, extra kwargs)."""
    now = timezone.now()
    actor = _actor()
    if case == "code_not_assigned_to_user":
        AssignedCodeFactory(book=CouponBookFactory(tenant=tenant), code="CASE1", user_id="bob")
        return "CASE1", "ann", {}
    if case == "code_voided":
        AssignedCodeFactory(book=CouponBookFactory(tenant=tenant), code="CASE1", user_id="ann", state=Code.State.VOIDED)
        return "CASE1", "ann", {}
    if case == "book_not_active":
        AssignedCodeFactory(book=CouponBookFactory(tenant=tenant, status="paused"), code="CASE1", user_id="ann")
        return "CASE1", "ann", {}
    if case == "book_archived":
        AssignedCodeFactory(book=CouponBookFactory(tenant=tenant, status="archived"), code="CASE1", user_id="ann")
        return "CASE1", "ann", {}
    if case == "book_not_started":
        book = CouponBookFactory(tenant=tenant, valid_from=now + timedelta(days=1))
        AssignedCodeFactory(book=book, code="CASE1", user_id="ann")
        return "CASE1", "ann", {}
    if case == "book_expired":
        book = CouponBookFactory(tenant=tenant, valid_until=now - timedelta(days=1))
        AssignedCodeFactory(book=book, code="CASE1", user_id="ann")
        return "CASE1", "ann", {}
    if case == "code_expired":
        AssignedCodeFactory(book=CouponBookFactory(tenant=tenant), code="CASE1", user_id="ann", expires_at=now)
        return "CASE1", "ann", {}
    if case == "code_locked":
        CodeFactory(book=SharedBookFactory(tenant=tenant, uses_per_code=1), code="CASE1")
        code_reserve(tenant=tenant, code="CASE1", user_id="bob", actor=actor)
        return "CASE1", "ann", {}
    if case == "code_exhausted":
        CodeFactory(book=SharedBookFactory(tenant=tenant, uses_per_code=1), code="CASE1")
        code_redeem(tenant=tenant, code="CASE1", user_id="bob", actor=actor)
        return "CASE1", "ann", {}
    if case == "user_redemption_limit_reached":
        book = SharedBookFactory(tenant=tenant, max_redemptions_per_user=1)
        CodeFactory(book=book, code="CASE1")
        CodeFactory(book=book, code="CASE2")
        code_redeem(tenant=tenant, code="CASE2", user_id="ann", actor=actor)
        return "CASE1", "ann", {}
    if case == "product_not_eligible":
        AssignedCodeFactory(book=CouponBookFactory(tenant=tenant, product_ids=["p1"]), code="CASE1", user_id="ann")
        return "CASE1", "ann", {"product_id": "p2"}
    raise AssertionError(case)


FAILING_CASES = [
    "code_not_assigned_to_user",
    "code_voided",
    "book_not_active",
    "book_archived",
    "book_not_started",
    "book_expired",
    "code_expired",
    "code_locked",
    "code_exhausted",
    "user_redemption_limit_reached",
    "product_not_eligible",
]


@pytest.mark.parametrize("case", FAILING_CASES)
def test_validate_answers_invalid_with_the_reason_redeem_would_give(tenant, case):
    # Given
    code, user_id, extra = _setup_failing_case(tenant, case)
    # When
    result = validate_unchanged(tenant=tenant, code=code, user_id=user_id, amount=Decimal(10), currency="EUR", **extra)
    # Then: the same reason as redeem itself
    assert (result.valid, result.reason, result.discount) == (False, case, None)
    assert result.message
    raises(
        case, code_redeem, tenant=tenant, code=code, user_id=user_id, actor=_actor(), amount=Decimal(10), currency="EUR", **extra
    )


def test_validate_of_an_unknown_code_raises(tenant, other_tenant, book):
    # (Bad input is refused by the edge, ValidateQuery: api/tests/test_validate_input.py.)
    AssignedCodeFactory(book=CouponBookFactory(tenant=other_tenant), code="THEIRS3", user_id="ann")
    raises("code_not_found", code_validate, tenant=tenant, code="THEIRS3", user_id="ann")
    raises("code_not_found", code_validate, tenant=tenant, code="NOPE", user_id="ann")


# --- codes_of_user --------------------------------------------------------------------------------------------


def test_codes_of_user_lists_the_users_codes_in_the_tenant_newest_first(tenant, other_tenant):
    # Given
    book_a = CouponBookFactory(tenant=tenant)
    book_b = CouponBookFactory(tenant=tenant)
    now = timezone.now()
    older = AssignedCodeFactory(book=book_a, code="OLDER", user_id="ann", assigned_at=now - timedelta(days=2))
    newer = AssignedCodeFactory(book=book_b, code="NEWER", user_id="ann", assigned_at=now - timedelta(days=1))
    AssignedCodeFactory(book=book_a, code="BOBS", user_id="bob")
    AssignedCodeFactory(book=CouponBookFactory(tenant=other_tenant), code="ELSEWHERE", user_id="ann")
    CodeFactory(book=book_a, code="FREE5")
    # When / Then
    assert list(codes_of_user(tenant=tenant, user_id="ann")) == [newer, older]
    assert list(codes_of_user(tenant=tenant, user_id="ann", book_id=book_a.pk)) == [older]
    assert list(codes_of_user(tenant=tenant, user_id="nobody")) == []


def test_codes_of_user_refuses_bad_input(tenant, other_tenant):
    foreign = CouponBookFactory(tenant=other_tenant)
    raises("book_not_found", codes_of_user, tenant=tenant, user_id="ann", book_id=foreign.pk)
    raises("book_not_found", codes_of_user, tenant=tenant, user_id="ann", book_id=2**62)
    # (A blank user id, and " ann " read as "ann", are the edge's: api/tests/test_validate_input.py.)


# --- book_stats -----------------------------------------------------------------------------------------------


def test_book_stats_counts_codes_by_state_and_totals(tenant, actor):
    # Given
    book = CouponBookFactory(tenant=tenant, max_redemptions_per_user=None, max_codes_per_user=None)
    CodeFactory.create_batch(3, book=book)
    AssignedCodeFactory.create_batch(2, book=book, user_id="ann")
    CodeFactory(book=book, state=Code.State.VOIDED)
    used = AssignedCodeFactory(book=book, code="USED7", user_id="bob")
    refunded = AssignedCodeFactory(book=book, code="REFUNDED7", user_id="bob")
    held = AssignedCodeFactory(book=book, code="HELD7", user_id="cid")
    code_redeem(tenant=tenant, code=used.code, user_id="bob", actor=actor, amount=30, currency="EUR")
    redemption = code_redeem(tenant=tenant, code=refunded.code, user_id="bob", actor=actor, amount=50, currency="EUR")
    redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=actor)
    code_reserve(tenant=tenant, code=held.code, user_id="cid", actor=actor)
    # A lapsed hold is not counted.
    ReservationFactory(code=AssignedCodeFactory(book=book, user_id="dan"), user_id="dan", expires_at=timezone.now())
    # Another book's rows are not counted.
    CodeFactory.create_batch(2, book=CouponBookFactory(tenant=tenant))
    # When
    stats = book_stats(book=book)
    # Then
    assert stats["codes"] == {"free": 3, "assigned": 5, "redeemed": 1, "voided": 1, "total": 10}
    assert stats["active_reservations"] == 1
    assert (stats["redemptions"], stats["reversed"], stats["discount_totals"]) == (1, 1, {"EUR": Decimal("3.00")})
    assert [(row["redemptions"], row["discounts"]) for row in stats["per_day"]] == [(1, {"EUR": Decimal("3.00")})]


def test_book_stats_total_the_discount_per_currency_never_across(tenant, actor):
    # Given: a percent book used for orders in EUR and in USD, one of each reversed
    book = SharedBookFactory(tenant=tenant)
    CodeFactory(book=book, code="ANYCUR")
    for user, amount, currency in (("a", 30, "EUR"), ("b", 50, "EUR"), ("c", 40, "USD"), ("d", 90, "USD"), ("e", 70, "GBP")):
        code_redeem(tenant=tenant, code="ANYCUR", user_id=user, actor=actor, amount=amount, currency=currency)
    code_redeem(tenant=tenant, code="ANYCUR", user_id="f", actor=actor)  # no amount: no discount known, no currency
    for user in ("d", "e"):
        redemption_reverse(tenant=tenant, redemption_id=Redemption.objects.get(user_id=user).pk, actor=actor)
    # When
    stats = book_stats(book=book)
    # Then: 10 % of 30 + 50 EUR, of 40 USD; the reversed USD and the only GBP order give nothing
    assert stats["discount_totals"] == {"EUR": Decimal("8.00"), "USD": Decimal("4.00")}
    assert list(stats["discount_totals"]) == ["EUR", "USD"]
    assert [(row["redemptions"], row["discounts"]) for row in stats["per_day"]] == [
        (4, {"EUR": Decimal("8.00"), "USD": Decimal("4.00")})
    ]


def test_book_stats_of_an_empty_book(book):
    stats = book_stats(book=book)
    assert stats["codes"] == {"free": 0, "assigned": 0, "redeemed": 0, "voided": 0, "total": 0}
    assert (stats["redemptions"], stats["reversed"], stats["discount_totals"], stats["per_day"]) == (0, 0, {}, [])


def test_book_stats_per_day_follows_the_tenants_timezone(db):
    # Given: two redemptions an hour apart, either side of midnight UTC but on the same day in Tokyo (UTC+9)
    tenant = TenantFactory(timezone="Asia/Tokyo")
    book = CouponBookFactory(tenant=tenant)
    day = (timezone.now() - timedelta(days=3)).date()
    late = datetime(day.year, day.month, day.day, 23, 30, tzinfo=zoneinfo.ZoneInfo("UTC"))
    for when, discount in ((late, "1.00"), (late + timedelta(hours=1), "2.00"), (late + timedelta(hours=16), "4.00")):
        RedemptionFactory(code=CodeFactory(book=book), redeemed_at=when, discount=Decimal(discount), currency="JPY")
    # When
    per_day = book_stats(book=book)["per_day"]
    # Then: 23:30 and 00:30 UTC are 08:30 and 09:30 the next day in Tokyo; 15:30 UTC is 00:30 the day after
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    first_day = late.astimezone(tokyo).date()
    assert [(row["day"], row["redemptions"], row["discounts"]) for row in per_day] == [
        (first_day, 2, {"JPY": Decimal("3.00")}),
        (first_day + timedelta(days=1), 1, {"JPY": Decimal("4.00")}),
    ]


# --- code_history and look-ups --------------------------------------------------------------------------------


def test_code_history_lists_the_codes_events_in_order(tenant, book, actor):
    CodeFactory(book=book, code="HIST1")
    code_assign(tenant=tenant, code="HIST1", user_id="ann", actor=actor)
    reservation = code_reserve(tenant=tenant, code="HIST1", user_id="ann", actor=actor)
    code_release(tenant=tenant, code="HIST1", user_id="ann", actor=actor, token=reservation.token)
    code_void(tenant=tenant, code="HIST1", actor=actor)
    CodeFactory(book=book, code="OTHER1")
    code_assign(tenant=tenant, code="OTHER1", user_id="bob", actor=actor)
    history = code_history(code=Code.objects.get(code="HIST1"))
    assert [event.kind for event in history] == ["assigned", "locked", "unlocked", "voided"]


def test_look_ups_are_scoped_to_the_tenant(tenant, other_tenant, book):
    CodeFactory(book=book, code="LOOK1")
    foreign = CouponBookFactory(tenant=other_tenant)
    CodeFactory(book=foreign, code="LOOK2")
    assert book_get(tenant=tenant, book_id=str(book.pk)) == book
    assert code_get(tenant=tenant, code="look1").book == book
    raises("book_not_found", book_get, tenant=tenant, book_id=foreign.pk)
    raises("book_not_found", book_get, tenant=tenant, book_id="1; DROP TABLE")
    raises("code_not_found", code_get, tenant=tenant, code="LOOK2")
    assert CouponBook.objects.count() == 2
