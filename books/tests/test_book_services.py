"""book_create, book_update and book_archive: every validation, and what a change does to the book's codes."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from books.models import Code, CouponBook, Event
from books.services.books import book_archive, book_create, book_save_check, book_update
from books.services.code_creation import codes_generate, codes_upload
from books.services.codes import code_redeem, code_reserve
from core.exceptions import ApplicationError
from tests.factories import AssignedCodeFactory, CodeFactory, CouponBookFactory, SharedBookFactory, rows_snapshot

pytestmark = pytest.mark.django_db


def refused(error_code: str, call, /, *args, **kwargs) -> ApplicationError:
    """Given a call that must break a rule: it raises `error_code` and leaves every row as it was."""
    before = rows_snapshot()
    with pytest.raises(ApplicationError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == error_code, caught.value
    assert rows_snapshot() == before
    return caught.value


# --- book_create ----------------------------------------------------------------------------------------------


def test_book_create_defaults_follow_the_spec(tenant):
    book = book_create(tenant=tenant, name="Plain")
    book.refresh_from_db()
    assert book.status == CouponBook.Status.DRAFT
    assert book.max_codes_per_user == 1
    assert book.max_redemptions_per_user == 1
    assert book.uses_per_code == 1
    assert book.requires_assignment is True
    assert book.lock_ttl_seconds == 300
    assert book.product_ids == []


def test_book_create_accepts_unicode_names(tenant):
    book = book_create(tenant=tenant, name="Été 🎉 Straße 夏")
    book.refresh_from_db()
    assert book.name == "Été 🎉 Straße 夏"


def test_book_create_refuses_unknown_fields(tenant):
    # The edges pass only editable fields: another one is the caller's mistake (a TypeError), and writes nothing.
    with pytest.raises(TypeError, match="colour, tenant_id"):
        book_create(tenant=tenant, name="Campaign", colour="red", tenant_id=7)
    assert not CouponBook.objects.exists()


@pytest.mark.parametrize("ttl", [10, 3600])
def test_book_create_accepts_lock_ttl_at_its_bounds(tenant, ttl):
    assert book_create(tenant=tenant, name="Campaign", lock_ttl_seconds=ttl).lock_ttl_seconds == ttl


def test_book_create_accepts_percent_of_exactly_100_and_zero(tenant):
    assert book_create(tenant=tenant, name="Free", discount_value=Decimal(100)).discount_value == Decimal("100.00")
    assert book_create(tenant=tenant, name="Nothing", discount_value=Decimal(0)).discount_value == Decimal("0.00")


# --- book_update ----------------------------------------------------------------------------------------------


def test_book_update_changes_only_the_fields_given(book):
    # Given
    before = CouponBook.objects.values().get(pk=book.pk)
    # When
    updated = book_update(book=book, name="Renamed", status="paused")
    # Then
    after = CouponBook.objects.values().get(pk=book.pk)
    assert updated.name == after["name"] == "Renamed"
    assert after["status"] == "paused"
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {"name", "status", "updated_at"}


def test_book_update_checks_consistency_with_the_stored_fields(book):
    # A fixed discount with no currency, though only discount_type is sent.
    refused("invalid_input", book_update, book=book, discount_type="fixed")
    # A percent above 100 once the type is percent again.
    book_update(book=book, discount_type="fixed", discount_value=Decimal(250), currency="USD")
    refused("invalid_input", book_update, book=book, discount_type="percent")
    # valid_until before the stored valid_from.
    book_update(book=book, valid_from=datetime(2030, 6, 1, tzinfo=UTC))
    refused("invalid_input", book_update, book=book, valid_until=datetime(2030, 5, 1, tzinfo=UTC))


def test_book_update_refuses_unknown_fields(book):
    # Bad values are refused at the edges (api/tests/test_book_input.py); a field that is not editable is the
    # caller's mistake.
    with pytest.raises(TypeError, match="tenant"):
        book_update(book=book, tenant=None)


def test_book_update_carries_uses_per_code_to_the_codes(book):
    # Given
    codes = CodeFactory.create_batch(3, book=book)
    other_book_code = CodeFactory(book=CouponBookFactory(tenant=book.tenant))
    # When
    book_update(book=book, uses_per_code=5)
    # Then
    assert set(Code.objects.filter(book=book).values_list("max_uses", flat=True)) == {5}
    assert Code.objects.get(pk=other_book_code.pk).max_uses == 1
    # When: unlimited
    book_update(book=book, uses_per_code=None)
    # Then
    assert {c.max_uses for c in Code.objects.filter(pk__in=[c.pk for c in codes])} == {None}


def test_book_save_check_answers_what_the_save_would_and_writes_nothing(tenant):
    """The admin form's check: the same refusal as book_create / book_update, with no row written."""
    book = SharedBookFactory(tenant=tenant, uses_per_code=5)
    CodeFactory(book=book, code="CHECK5", redeemed_count=3)
    error = refused("uses_below_redemptions", book_save_check, tenant=tenant, book=book, values={"uses_per_code": 2})
    assert error.details == {"most_redeemed": 3}
    refused(
        "invalid_input",
        book_save_check,
        tenant=tenant,
        book=None,
        values={"name": "P", "discount_type": "percent", "discount_value": Decimal(150)},
    )
    # Values the services accept pass, and are still not saved.
    before = rows_snapshot()
    book_save_check(tenant=tenant, book=book, values={"uses_per_code": 3, "name": "Renamed"})
    book_save_check(tenant=tenant, book=None, values={"name": "New book"})
    assert rows_snapshot() == before
    assert CouponBook.objects.get(pk=book.pk).name != "Renamed"


def test_book_update_refuses_uses_per_code_below_existing_redemptions(tenant, actor):
    # Given: a shared code redeemed three times
    book = SharedBookFactory(tenant=tenant, uses_per_code=5)
    code = CodeFactory(book=book, code="SHARED5")
    for n in range(3):
        code_redeem(tenant=tenant, code="SHARED5", user_id=f"user-{n}", actor=actor)
    # When / Then
    error = refused("uses_below_redemptions", book_update, book=book, uses_per_code=2)
    assert error.details == {"most_redeemed": 3}
    assert Code.objects.get(pk=code.pk).max_uses == 5
    # Exactly the count of redemptions is allowed, and the code is then used up.
    book_update(book=book, uses_per_code=3)
    code.refresh_from_db()
    assert code.max_uses == 3
    assert code.state == Code.State.REDEEMED


def test_book_update_raising_uses_per_code_makes_a_used_up_code_usable_again(tenant, actor):
    # Given: a single-use code assigned to a user and redeemed
    book = CouponBookFactory(tenant=tenant, max_redemptions_per_user=None)
    code = AssignedCodeFactory(book=book, code="ONCE1", user_id="ann")
    code_redeem(tenant=tenant, code="ONCE1", user_id="ann", actor=actor)
    code.refresh_from_db()
    assert code.state == Code.State.REDEEMED
    # When
    book_update(book=book, uses_per_code=2)
    # Then: it is the user's again, with one use left, and the second redemption succeeds
    code.refresh_from_db()
    assert (code.state, code.max_uses, code.redeemed_count) == (Code.State.ASSIGNED, 2, 1)
    code_redeem(tenant=tenant, code="ONCE1", user_id="ann", actor=actor)
    code.refresh_from_db()
    assert (code.state, code.redeemed_count) == (Code.State.REDEEMED, 2)


def test_book_update_of_an_archived_book_is_refused_until_restored(book):
    # Given
    CodeFactory(book=book)
    book_archive(book=book)
    # When / Then
    refused("book_archived", book_update, book=book, name="Nope")
    # Restoring it by its status works.
    book_update(book=book, status="paused")
    assert CouponBook.objects.get(pk=book.pk).status == CouponBook.Status.PAUSED


# --- book_archive ---------------------------------------------------------------------------------------------


def test_book_archive_keeps_a_book_that_has_codes(book):
    # Given
    code = CodeFactory(book=book)
    # When
    archived = book_archive(book=book)
    # Then
    assert archived is not None
    assert CouponBook.objects.get(pk=book.pk).status == CouponBook.Status.ARCHIVED
    assert Code.objects.filter(pk=code.pk).exists()
    # Archiving again changes nothing.
    assert book_archive(book=book).status == CouponBook.Status.ARCHIVED


def test_book_archive_deletes_a_book_that_never_had_codes(book):
    assert book_archive(book=book) is None
    assert not CouponBook.objects.filter(pk=book.pk).exists()


def test_an_archived_book_refuses_new_codes(book, actor):
    # Given
    CodeFactory(book=book, code="KEEP1")
    book_archive(book=book)
    # When / Then
    refused("book_archived", codes_generate, book=book, count=5, actor=actor)
    refused("book_archived", codes_upload, book=book, codes=["NEW1"], actor=actor)
    assert list(Code.objects.filter(book=book).values_list("code", flat=True)) == ["KEEP1"]
    assert not Event.objects.filter(book=book).exists()


def test_book_validity_bounds_are_stored_as_given(tenant):
    start = timezone.now() + timedelta(days=1)
    book = book_create(tenant=tenant, name="Later", valid_from=start, valid_until=start + timedelta(days=7))
    book.refresh_from_db()
    assert book.valid_from == start
    assert book.valid_until == start + timedelta(days=7)


def test_uses_per_code_cannot_drop_below_redemptions_plus_active_holds(tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=3, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="HELD-3")
    for user in ("a", "b"):
        code_reserve(tenant=tenant, code=code.code, user_id=user, actor=actor)

    with pytest.raises(ApplicationError) as refused:
        book_update(book=book, uses_per_code=1)

    assert refused.value.code == "uses_below_redemptions"
    assert refused.value.details["codes"] == ["HELD-3"]
    code.refresh_from_db()
    book.refresh_from_db()
    assert (book.uses_per_code, code.max_uses) == (3, 3)
    book_update(book=book, uses_per_code=2)
    code.refresh_from_db()
    assert code.max_uses == 2
