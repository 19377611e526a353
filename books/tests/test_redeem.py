"""Redeem (with and without a reservation token) and reverse: discounts, eligibility, counters, limits, the log."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from books.models import Code, CouponBook, Event, Reservation
from books.services.books import book_update
from books.services.codes import code_redeem, code_release, code_reserve, redemption_reverse
from core.actors import Actor
from redemptions.models import Redemption
from tests.factories import AssignedCodeFactory, CodeFactory, CouponBookFactory, SharedBookFactory, refused

pytestmark = pytest.mark.django_db


# --- Redeem ---------------------------------------------------------------------------------------------------


def test_redeem_with_a_token_consumes_the_reservation(tenant, book, actor):
    # Given
    code = AssignedCodeFactory(book=book, code="TOKEN1", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="TOKEN1", user_id="ann", actor=actor)
    api = Actor(kind=Actor.API_CLIENT, id="cli_9")
    # When
    redemption = code_redeem(
        tenant=tenant,
        code="token1",
        user_id="ann",
        actor=api,
        token=reservation.token,
        order_ref="ORD-1",
        amount="80.00",
        currency="USD",
        product_id="sku-1",
        idempotency_key="key-1",
    )
    # Then
    stored = Redemption.objects.get(pk=redemption.pk)
    assert (stored.tenant_id, stored.book_id, stored.code_id, stored.reservation_id) == (
        tenant.pk,
        book.pk,
        code.pk,
        reservation.pk,
    )
    assert (stored.user_id, stored.order_ref, stored.product_id, stored.idempotency_key) == ("ann", "ORD-1", "sku-1", "key-1")
    assert (stored.amount, stored.discount, stored.currency) == (Decimal("80.00"), Decimal("8.00"), "USD")
    assert (stored.actor_type, stored.actor_id) == ("api_client", "cli_9")
    assert stored.reversed_at is None
    reservation.refresh_from_db()
    assert reservation.status == Reservation.Status.CONSUMED
    assert reservation.ended_at is not None
    code.refresh_from_db()
    assert (code.state, code.redeemed_count) == (Code.State.REDEEMED, 1)
    event = Event.objects.get(code=code, kind="redeemed")
    assert (event.user_id, event.reservation_id, event.data) == (
        "ann",
        reservation.pk,
        {"redemption": stored.pk, "order_ref": "ORD-1"},
    )


def test_redeem_without_a_token_locks_and_redeems_in_one_step(tenant, book, actor):
    # Given
    code = AssignedCodeFactory(book=book, code="DIRECT1", user_id="ann")
    # When
    redemption = code_redeem(tenant=tenant, code="DIRECT1", user_id="ann", actor=actor, amount=20, currency="EUR")
    # Then
    assert Redemption.objects.get(pk=redemption.pk).reservation is None
    assert not Reservation.objects.exists()
    code.refresh_from_db()
    assert (code.state, code.redeemed_count) == (Code.State.REDEEMED, 1)
    assert list(Event.objects.filter(code=code).values_list("kind", flat=True)) == ["redeemed"]


def test_redeem_without_a_token_follows_the_lock_rules(tenant, book, actor):
    AssignedCodeFactory(book=book, code="RULES1", user_id="ann")
    refused("code_not_assigned_to_user", code_redeem, tenant=tenant, code="RULES1", user_id="bob", actor=actor)
    # The assignee's own hold reserves the only use: redeem it with the token, not without.
    code_reserve(tenant=tenant, code="RULES1", user_id="ann", actor=actor)
    refused("code_locked", code_redeem, tenant=tenant, code="RULES1", user_id="ann", actor=actor)


@pytest.mark.parametrize(
    ("percent", "amount", "discount"),
    [
        ("10", "59.99", "6.00"),
        ("12.5", "10.00", "1.25"),
        ("33.33", "0.05", "0.02"),
        ("100", "42.42", "42.42"),
        ("0", "10", "0.00"),
        ("15", "0", "0.00"),
    ],
)
def test_a_percent_discount_is_a_share_of_the_amount(tenant, actor, percent, amount, discount):
    book = CouponBookFactory(tenant=tenant, discount_value=Decimal(percent))
    AssignedCodeFactory(book=book, code="PCT1", user_id="ann")
    redemption = code_redeem(tenant=tenant, code="PCT1", user_id="ann", actor=actor, amount=amount, currency="EUR")
    assert Redemption.objects.get(pk=redemption.pk).discount == Decimal(discount)


def test_a_percent_discount_without_an_amount_is_unknown(tenant, book, actor):
    AssignedCodeFactory(book=book, code="PCT2", user_id="ann")
    redemption = code_redeem(tenant=tenant, code="PCT2", user_id="ann", actor=actor)
    stored = Redemption.objects.get(pk=redemption.pk)
    assert (stored.amount, stored.discount) == (None, None)


@pytest.mark.parametrize(
    ("amount", "discount"), [("100", "15.00"), ("15", "15.00"), ("9.99", "9.99"), ("0", "0.00"), (None, "15.00")]
)
def test_a_fixed_discount_is_capped_at_the_amount(tenant, actor, amount, discount):
    book = CouponBookFactory(tenant=tenant, discount_type="fixed", discount_value=Decimal("15"), currency="EUR")
    AssignedCodeFactory(book=book, code="FIX1", user_id="ann")
    sent = {"amount": amount, "currency": "EUR"} if amount is not None else {}
    redemption = code_redeem(tenant=tenant, code="FIX1", user_id="ann", actor=actor, **sent)
    stored = Redemption.objects.get(pk=redemption.pk)
    assert (stored.discount, stored.currency) == (Decimal(discount), "EUR")


# --- Currency: money is in the order's currency; a book with a currency takes no other ----------------------


@pytest.mark.parametrize("currency", ["EUR", "USD", "JPY"])
def test_a_percent_book_without_a_currency_redeems_in_the_orders_currency(tenant, book, actor, currency):
    AssignedCodeFactory(book=book, code="CUR1", user_id="ann")
    redemption = code_redeem(tenant=tenant, code="CUR1", user_id="ann", actor=actor, amount="50", currency=currency)
    stored = Redemption.objects.get(pk=redemption.pk)
    assert (stored.discount, stored.currency) == (Decimal("5.00"), currency)


@pytest.mark.parametrize(
    ("discount_type", "discount_value"), [("fixed", "15"), ("percent", "10")], ids=["fixed", "percent-with-currency"]
)
def test_a_book_with_a_currency_refuses_an_order_in_another(tenant, actor, discount_type, discount_value):
    book = CouponBookFactory(tenant=tenant, discount_type=discount_type, discount_value=Decimal(discount_value), currency="EUR")
    code = AssignedCodeFactory(book=book, code="CUR2", user_id="ann")
    error = refused(
        "currency_mismatch", code_redeem, tenant=tenant, code="CUR2", user_id="ann", actor=actor, amount="50", currency="USD"
    )
    assert error.status == 409
    assert error.details == {"currency": "USD", "book_currency": "EUR"}
    code.refresh_from_db()
    assert (code.redeemed_count, Redemption.objects.count()) == (0, 0)  # nothing was taken
    redemption = code_redeem(tenant=tenant, code="CUR2", user_id="ann", actor=actor, amount="50", currency="EUR")
    assert Redemption.objects.get(pk=redemption.pk).currency == "EUR"


def test_without_an_amount_the_redemption_takes_the_books_currency(tenant, actor):
    fixed = CouponBookFactory(tenant=tenant, discount_type="fixed", discount_value=Decimal("5"), currency="USD")
    AssignedCodeFactory(book=fixed, code="CUR3", user_id="ann")
    percent = CouponBookFactory(tenant=tenant)
    AssignedCodeFactory(book=percent, code="CUR4", user_id="ann")
    assert code_redeem(tenant=tenant, code="CUR3", user_id="ann", actor=actor).currency == "USD"
    assert code_redeem(tenant=tenant, code="CUR4", user_id="ann", actor=actor).currency == ""


@pytest.mark.parametrize("currency", [None, "", "eur", "EURO", "E1R", "€", 978, ["EUR"]])
def test_an_amount_needs_a_valid_currency(tenant, book, actor, currency):
    AssignedCodeFactory(book=book, code="CUR5", user_id="ann")
    error = refused(
        "invalid_input", code_redeem, tenant=tenant, code="CUR5", user_id="ann", actor=actor, amount="10", currency=currency
    )
    assert error.details == {"field": "currency"}
    assert not Redemption.objects.exists()


@pytest.mark.parametrize("amount", ["abc", "-1", -0.01, "NaN", "Infinity", "1e20", [], True])
def test_a_bad_amount_is_refused(tenant, book, actor, amount):
    AssignedCodeFactory(book=book, code="AMT1", user_id="ann")
    error = refused("invalid_input", code_redeem, tenant=tenant, code="AMT1", user_id="ann", actor=actor, amount=amount)
    assert error.details == {"field": "amount"}


def test_only_eligible_products_may_be_redeemed(tenant, actor):
    # Given
    book = CouponBookFactory(tenant=tenant, product_ids=["sku-1", "sku-2"], max_redemptions_per_user=None, uses_per_code=3)
    AssignedCodeFactory(book=book, code="ELIG1", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="ELIG1", user_id="ann", actor=actor)
    # When / Then: another product, or none, is refused and the reservation stays active
    refused("product_not_eligible", code_redeem, tenant=tenant, code="ELIG1", user_id="ann", actor=actor, product_id="sku-3")
    refused("product_not_eligible", code_redeem, tenant=tenant, code="ELIG1", user_id="ann", actor=actor, token=reservation.token)
    assert Reservation.objects.get(pk=reservation.pk).status == Reservation.Status.ACTIVE
    # An eligible product is fine, with the token and without.
    code_redeem(tenant=tenant, code="ELIG1", user_id="ann", actor=actor, token=reservation.token, product_id="sku-2")
    code_redeem(tenant=tenant, code="ELIG1", user_id="ann", actor=actor, product_id="sku-1")
    assert Redemption.objects.filter(code__code="ELIG1").count() == 2


def test_redeem_with_a_lapsed_reservation_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="LATE1", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="LATE1", user_id="ann", actor=actor)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused("reservation_expired", code_redeem, tenant=tenant, code="LATE1", user_id="ann", actor=actor, token=reservation.token)


def test_redeem_with_a_released_or_consumed_reservation_is_refused(tenant, actor):
    book = CouponBookFactory(tenant=tenant, uses_per_code=3, max_redemptions_per_user=None)
    AssignedCodeFactory(book=book, code="DONE1", user_id="ann")
    released = code_reserve(tenant=tenant, code="DONE1", user_id="ann", actor=actor)
    code_release(tenant=tenant, code="DONE1", user_id="ann", actor=actor, token=released.token)
    refused("reservation_not_active", code_redeem, tenant=tenant, code="DONE1", user_id="ann", actor=actor, token=released.token)
    consumed = code_reserve(tenant=tenant, code="DONE1", user_id="ann", actor=actor)
    code_redeem(tenant=tenant, code="DONE1", user_id="ann", actor=actor, token=consumed.token)
    refused("reservation_not_active", code_redeem, tenant=tenant, code="DONE1", user_id="ann", actor=actor, token=consumed.token)
    assert Code.objects.get(code="DONE1").redeemed_count == 1


def test_redeem_with_a_token_of_another_user_or_code_is_refused(tenant, actor):
    book = SharedBookFactory(tenant=tenant, uses_per_code=5)
    CodeFactory(book=book, code="TOK-A")
    CodeFactory(book=book, code="TOK-B")
    bobs = code_reserve(tenant=tenant, code="TOK-A", user_id="bob", actor=actor)
    refused("reservation_not_found", code_redeem, tenant=tenant, code="TOK-A", user_id="ann", actor=actor, token=bobs.token)
    refused("reservation_not_found", code_redeem, tenant=tenant, code="TOK-B", user_id="bob", actor=actor, token=bobs.token)
    refused("reservation_not_found", code_redeem, tenant=tenant, code="TOK-A", user_id="bob", actor=actor, token="made-up")


def test_redeem_with_a_token_after_the_book_was_paused_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="PAUSE1", user_id="ann")
    reservation = code_reserve(tenant=tenant, code="PAUSE1", user_id="ann", actor=actor)
    book_update(book=book, status="paused")
    refused("book_not_active", code_redeem, tenant=tenant, code="PAUSE1", user_id="ann", actor=actor, token=reservation.token)


def test_counters_follow_each_redemption_until_the_code_is_used_up(tenant, actor):
    # Given: a shared code with three uses
    book = SharedBookFactory(tenant=tenant, uses_per_code=3, max_redemptions_per_user=1)
    CodeFactory(book=book, code="THREE")
    # When / Then
    for n, user in enumerate(["ann", "bob", "cid"], start=1):
        code_redeem(tenant=tenant, code="THREE", user_id=user, actor=actor)
        code = Code.objects.get(code="THREE")
        assert code.redeemed_count == n
        assert code.state == (Code.State.REDEEMED if n == 3 else Code.State.FREE)
    refused("code_exhausted", code_redeem, tenant=tenant, code="THREE", user_id="dan", actor=actor)
    assert Redemption.objects.filter(code__code="THREE").count() == 3


def test_an_unlimited_code_is_never_used_up(tenant, actor):
    book = SharedBookFactory(tenant=tenant)
    CodeFactory(book=book, code="FOREVER")
    for n in range(12):
        code_redeem(tenant=tenant, code="FOREVER", user_id=f"user-{n % 3}", actor=actor)
    code = Code.objects.get(code="FOREVER")
    assert (code.state, code.redeemed_count, code.max_uses) == (Code.State.FREE, 12, None)


def test_the_per_user_redemption_limit_holds_across_codes_of_the_book(tenant, actor):
    # Given
    book = SharedBookFactory(tenant=tenant, max_redemptions_per_user=2)
    CodeFactory(book=book, code="ONE-A")
    CodeFactory(book=book, code="ONE-B")
    code_redeem(tenant=tenant, code="ONE-A", user_id="ann", actor=actor)
    code_redeem(tenant=tenant, code="ONE-B", user_id="ann", actor=actor)
    # When / Then
    error = refused("user_redemption_limit_reached", code_redeem, tenant=tenant, code="ONE-A", user_id="ann", actor=actor)
    assert error.details == {"limit": 2, "redeemed": 2, "reserved": 0}
    # Other books and other users are not affected.
    code_redeem(tenant=tenant, code="ONE-A", user_id="bob", actor=actor)


def test_the_database_refuses_more_redemptions_than_uses(tenant, book):
    # Given
    code = AssignedCodeFactory(book=book, code="CHECK1", user_id="ann")
    # When / Then: a raw update past max_uses is refused by the CHECK constraint itself
    with pytest.raises(IntegrityError), transaction.atomic():
        Code.objects.filter(pk=code.pk).update(redeemed_count=F("max_uses") + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Code.objects.filter(pk=code.pk).update(redeemed_count=-1)
    assert Code.objects.get(pk=code.pk).redeemed_count == 0


# --- Reverse --------------------------------------------------------------------------------------------------


def test_reverse_restores_the_use_and_keeps_the_row(tenant, book, actor):
    # Given
    AssignedCodeFactory(book=book, code="REFUND1", user_id="ann")
    redemption = code_redeem(
        tenant=tenant, code="REFUND1", user_id="ann", actor=actor, order_ref="ORD-7", amount=50, currency="EUR"
    )
    staff = Actor(kind=Actor.STAFF, id="12")
    # When
    reversed_ = redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=staff, reason="returned the goods")
    # Then: the row stays, with when, why and who
    stored = Redemption.objects.get(pk=redemption.pk)
    assert stored.reversed_at is not None
    assert (stored.reversal_reason, stored.reversed_by_type, stored.reversed_by_id) == ("returned the goods", "staff", "12")
    assert (stored.order_ref, stored.discount) == ("ORD-7", Decimal("5.00"))
    assert reversed_.reversed_at == stored.reversed_at
    # And the use is back on the code, which is the user's again
    code = Code.objects.get(code="REFUND1")
    assert (code.state, code.user_id, code.redeemed_count) == (Code.State.ASSIGNED, "ann", 0)
    event = Event.objects.get(code=code, kind="reversed")
    assert (event.actor_type, event.actor_id, event.user_id) == ("staff", "12", "ann")
    assert event.data == {"redemption": stored.pk, "reason": "returned the goods"}


def test_a_reversed_use_can_be_redeemed_again(tenant, book, actor):
    # Given: a single-use code, one redemption per user, redeemed then reversed
    AssignedCodeFactory(book=book, code="AGAIN2", user_id="ann")
    first = code_redeem(tenant=tenant, code="AGAIN2", user_id="ann", actor=actor)
    redemption_reverse(tenant=tenant, redemption_id=first.pk, actor=actor)
    # When
    second = code_redeem(tenant=tenant, code="AGAIN2", user_id="ann", actor=actor)
    # Then
    assert second.pk != first.pk
    code = Code.objects.get(code="AGAIN2")
    assert (code.state, code.redeemed_count) == (Code.State.REDEEMED, 1)
    assert Redemption.objects.filter(code=code).count() == 2


def test_reverse_of_a_shared_code_returns_it_to_the_free_pool(tenant, actor):
    book = SharedBookFactory(tenant=tenant, uses_per_code=1)
    CodeFactory(book=book, code="SHAREDONE")
    redemption = code_redeem(tenant=tenant, code="SHAREDONE", user_id="ann", actor=actor)
    assert Code.objects.get(code="SHAREDONE").state == Code.State.REDEEMED
    redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=actor)
    code = Code.objects.get(code="SHAREDONE")
    assert (code.state, code.user_id, code.redeemed_count) == (Code.State.FREE, None, 0)


def test_reverse_of_one_use_of_several_keeps_the_state(tenant, actor):
    book = SharedBookFactory(tenant=tenant, uses_per_code=3)
    CodeFactory(book=book, code="SEVERAL")
    first = code_redeem(tenant=tenant, code="SEVERAL", user_id="ann", actor=actor)
    code_redeem(tenant=tenant, code="SEVERAL", user_id="bob", actor=actor)
    redemption_reverse(tenant=tenant, redemption_id=first.pk, actor=actor)
    code = Code.objects.get(code="SEVERAL")
    assert (code.state, code.redeemed_count) == (Code.State.FREE, 1)


def test_reverse_twice_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="TWICE2", user_id="ann")
    redemption = code_redeem(tenant=tenant, code="TWICE2", user_id="ann", actor=actor)
    redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=actor, reason="first")
    error = refused("redemption_already_reversed", redemption_reverse, tenant=tenant, redemption_id=redemption.pk, actor=actor)
    assert "reversed_at" in error.details
    assert Redemption.objects.get(pk=redemption.pk).reversal_reason == "first"


def test_reverse_of_another_tenants_redemption_is_not_found(tenant, other_tenant, actor):
    foreign_book = CouponBookFactory(tenant=other_tenant)
    AssignedCodeFactory(book=foreign_book, code="THEIRS2", user_id="ann")
    redemption = code_redeem(tenant=other_tenant, code="THEIRS2", user_id="ann", actor=actor)
    refused("redemption_not_found", redemption_reverse, tenant=tenant, redemption_id=redemption.pk, actor=actor)
    for bad in ("abc", None, -1, 10**9, [1]):
        refused("redemption_not_found", redemption_reverse, tenant=tenant, redemption_id=bad, actor=actor)


def test_reverse_of_a_redemption_of_a_voided_code_keeps_it_voided(tenant, book, actor):
    from books.services.codes import code_void

    AssignedCodeFactory(book=book, code="VOIDREF", user_id="ann")
    redemption = code_redeem(tenant=tenant, code="VOIDREF", user_id="ann", actor=actor)
    code_void(tenant=tenant, code="VOIDREF", actor=actor)
    redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=actor)
    code = Code.objects.get(code="VOIDREF")
    assert (code.state, code.redeemed_count) == (Code.State.VOIDED, 0)


def test_a_reason_too_long_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="REASON1", user_id="ann")
    redemption = code_redeem(tenant=tenant, code="REASON1", user_id="ann", actor=actor)
    refused("invalid_input", redemption_reverse, tenant=tenant, redemption_id=redemption.pk, actor=actor, reason="x" * 1001)


def test_redeem_in_an_archived_book_is_refused(tenant, book, actor):
    AssignedCodeFactory(book=book, code="ARCH1", user_id="ann")
    CouponBook.objects.filter(pk=book.pk).update(status=CouponBook.Status.ARCHIVED)
    refused("book_archived", code_redeem, tenant=tenant, code="ARCH1", user_id="ann", actor=actor)
