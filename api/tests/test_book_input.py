"""A book's fields at the edges: the API's BookInput and the admin's CouponBookForm type and normalise them, and
refuse a bad one with invalid_input on its field before any service runs (moved here from the service tests when
the services began to take typed values)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from books.admin import CouponBookForm
from books.models import CouponBook
from books.services.books import EDITABLE_FIELDS, book_create, book_save_check
from core.exceptions import ApplicationError
from tests.factories import CouponBookFactory, rows_snapshot

from .conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # percent above 100
        ({"discount_type": "percent", "discount_value": "100.01"}, "discount_value"),
        ({"discount_value": 150}, "discount_value"),
        # fixed without a currency
        ({"discount_type": "fixed", "discount_value": 5}, "currency"),
        ({"discount_type": "fixed", "discount_value": 5, "currency": ""}, "currency"),
        # currency that is not a three-letter ISO code
        ({"discount_type": "fixed", "discount_value": 5, "currency": "EU"}, "currency"),
        ({"discount_type": "fixed", "discount_value": 5, "currency": "ÄÖÜ"}, "currency"),
        ({"discount_type": "fixed", "discount_value": 5, "currency": "E1R"}, "currency"),
        # validity in the wrong order, or equal
        ({"valid_from": "2030-02-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}, "valid_until"),
        ({"valid_from": "2030-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}, "valid_until"),
        ({"valid_from": "next tuesday"}, "valid_from"),
        ({"valid_until": 20300101}, "valid_until"),
        # limits below 1, or not whole numbers
        ({"uses_per_code": 0}, "uses_per_code"),
        ({"uses_per_code": -3}, "uses_per_code"),
        ({"max_codes_per_user": 0}, "max_codes_per_user"),
        ({"max_redemptions_per_user": 0}, "max_redemptions_per_user"),
        ({"max_redemptions_per_user": 1.5}, "max_redemptions_per_user"),
        ({"max_codes_per_user": "two"}, "max_codes_per_user"),
        ({"uses_per_code": True}, "uses_per_code"),
        ({"uses_per_code": 10**12}, "uses_per_code"),
        # bad types
        ({"discount_value": "ten"}, "discount_value"),
        ({"discount_value": None}, "discount_value"),
        ({"discount_value": "NaN"}, "discount_value"),
        ({"discount_value": "Infinity"}, "discount_value"),
        ({"discount_value": -1}, "discount_value"),
        ({"discount_type": "bogus"}, "discount_type"),
        ({"status": "live"}, "status"),
        ({"product_ids": "sku-1"}, "product_ids"),
        # the API names the offending item of a list
        ({"product_ids": [True]}, "product_ids.0"),
        ({"product_ids": [["nested"]]}, "product_ids.0"),
        ({"product_ids": [""]}, "product_ids.0"),
        ({"description": 5}, "description"),
        # unicode junk
        ({"description": "bad\x00byte"}, "description"),
        # lock_ttl_seconds bounds and type
        ({"lock_ttl_seconds": 9}, "lock_ttl_seconds"),
        ({"lock_ttl_seconds": 3601}, "lock_ttl_seconds"),
        ({"lock_ttl_seconds": True}, "lock_ttl_seconds"),
        ({"lock_ttl_seconds": 30.5}, "lock_ttl_seconds"),
    ],
)
def test_book_create_refuses_bad_fields(api, fields, field):
    before = rows_snapshot()
    body = assert_error(api.post("/api/v1/books/", {"name": "Campaign", **fields}, format="json"), 400, "invalid_input")
    assert body["details"]["field"] == field
    assert rows_snapshot() == before
    assert not CouponBook.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", None, 42, "x" * 201, "nul\x00name"])
def test_book_create_refuses_a_bad_name(api, name):
    body = assert_error(api.post("/api/v1/books/", {"name": name}, format="json"), 400, "invalid_input")
    assert body["details"]["field"] == "name"


def test_book_update_refuses_bad_values(api, tenant):
    book = CouponBookFactory(tenant=tenant)
    before = rows_snapshot()
    for fields, field in [({"uses_per_code": 0}, "uses_per_code"), ({"lock_ttl_seconds": 5000}, "lock_ttl_seconds")]:
        body = assert_error(api.patch(f"/api/v1/books/{book.pk}/", fields, format="json"), 400, "invalid_input")
        assert body["details"]["field"] == field
    assert rows_snapshot() == before


# --- the admin's book form --------------------------------------------------------------------------------------


def form_values(**data) -> dict:
    """What the admin's book form hands the services for these posted values (it must accept them)."""
    form = CouponBookForm(data=data)
    assert form.is_valid(), form.errors
    return {field: form.cleaned_data[field] for field in EDITABLE_FIELDS if field in form.cleaned_data}


def test_the_book_form_stores_every_field_normalised(tenant):
    # When
    values = form_values(
        name="  Summer sale  ",
        description="Ten off",
        status="active",
        discount_type="fixed",
        discount_value="12.5",
        currency="eur",
        product_ids="sku-1, 42",  # comma-separated text, as marketers type it
        valid_from="2030-01-01T00:00:00Z",
        valid_until="2030-02-01T00:00:00+01:00",
        max_codes_per_user="",
        max_redemptions_per_user="3",
        uses_per_code="2",
        lock_ttl_seconds="60",
    )
    book = book_create(tenant=tenant, **values)
    # Then
    book.refresh_from_db()
    assert book.tenant == tenant
    assert book.name == "Summer sale"
    assert book.status == CouponBook.Status.ACTIVE
    assert book.discount_type == CouponBook.DiscountType.FIXED
    assert book.discount_value == Decimal("12.50")
    assert book.currency == "EUR"
    assert book.product_ids == ["sku-1", "42"]
    assert book.valid_from == datetime(2030, 1, 1, tzinfo=UTC)
    assert book.valid_until == datetime(2030, 1, 31, 23, tzinfo=UTC)
    assert book.max_codes_per_user is None
    assert book.max_redemptions_per_user == 3
    assert book.uses_per_code == 2
    assert book.requires_assignment is False
    assert book.lock_ttl_seconds == 60


VALID_FORM = {
    "name": "Campaign",
    "status": "draft",
    "discount_type": "percent",
    "discount_value": "10",
    "lock_ttl_seconds": "300",
}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": " "}, "name"),
        ({"discount_type": "fixed", "currency": "E1R"}, "currency"),
        ({"product_ids": "sku-1, " + "x" * 256}, "product_ids"),
        ({"product_ids": "sku-1, a\x00b"}, "product_ids"),
        ({"valid_from": "0001-01-01T00:00:00+00:00"}, "valid_from"),
    ],
)
def test_the_book_form_refuses_bad_fields_on_their_field(fields, field):
    form = CouponBookForm(data={**VALID_FORM, **fields})
    assert not form.is_valid()
    assert field in form.errors


def test_book_save_check_sees_only_typed_values(tenant):
    """The admin form runs book_save_check on what it cleaned: a blank name never reaches it."""
    form = CouponBookForm(data={**VALID_FORM, "name": " "})
    assert not form.is_valid() and "name" in form.errors
    with pytest.raises(ApplicationError) as caught:
        book_save_check(tenant=tenant, book=None, values={"name": "P", "discount_value": Decimal(150)})
    assert caught.value.details["field"] == "discount_value"
