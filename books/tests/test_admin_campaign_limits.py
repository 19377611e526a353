"""Campaign limits in the back office: the book form's errors (through book_save_check), the book created through
the service with its counter, and the book page showing what its limits have used."""

from decimal import Decimal
from unittest import mock

import pytest
from django.urls import reverse

from books import admin as book_admin
from books.models import BookCounter, Code, CouponBook
from books.services.books import book_save_check
from books.services.codes import code_redeem, code_reserve
from core.actors import Actor
from core.exceptions import ApplicationError
from tenants.models import Role
from tests.factories import CodeFactory, CouponBookFactory
from tests.helpers import deadlock, logged_in

pytestmark = pytest.mark.django_db

ADD_FORM = {
    "name": "First 500",
    "description": "",
    "status": "active",
    "discount_type": "percent",
    "discount_value": "10",
    "currency": "",
    "product_ids": "",
    "valid_from_0": "",
    "valid_from_1": "",
    "valid_until_0": "",
    "valid_until_1": "",
    "max_codes_per_user": "1",
    "max_redemptions_per_user": "1",
    "uses_per_code": "1",
    "requires_assignment": "on",
    "lock_ttl_seconds": "300",
    "max_redemptions": "",
    "budget_amount": "",
    "min_order_amount": "",
    "max_discount_amount": "",
}


def form_errors(response) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"budget_amount": "100"}, "currency", "A budget is an amount in the book's currency"),
        ({"budget_amount": "0", "currency": "EUR"}, "budget_amount", "A budget must be above 0"),
        ({"discount_type": "fixed", "currency": "EUR", "max_discount_amount": "5"}, "max_discount_amount", "caps a percent"),
        ({"max_discount_amount": "0"}, "max_discount_amount", "must be above 0"),
        ({"min_order_amount": "-1"}, "min_order_amount", "greater than or equal to 0"),
        ({"max_redemptions": "0"}, "max_redemptions", "greater than or equal to 1"),
    ],
)
def test_the_book_form_shows_each_limit_rule_on_its_field(client, tenant, fields, field, message):
    logged_in(client, tenant, Role.MARKETING)

    response = client.post(reverse("admin:books_couponbook_add"), {**ADD_FORM, **fields})

    assert response.status_code == 200  # the form again
    assert any(message in error for error in form_errors(response)[field]), form_errors(response)
    assert not CouponBook.objects.filter(tenant=tenant, name="First 500").exists()


def test_a_book_with_limits_is_created_through_the_service_with_its_counter(client, tenant):
    logged_in(client, tenant, Role.MARKETING)
    fields = {"max_redemptions": "500", "budget_amount": "5000", "currency": "eur", "max_discount_amount": "20"}

    response = client.post(reverse("admin:books_couponbook_add"), {**ADD_FORM, **fields, "min_order_amount": "50"})

    assert response.status_code == 302, form_errors(response)
    book = CouponBook.objects.get(tenant=tenant, name="First 500")
    assert (book.max_redemptions, book.budget_amount, book.currency) == (500, Decimal("5000.00"), "EUR")
    assert (book.min_order_amount, book.max_discount_amount) == (Decimal("50.00"), Decimal("20.00"))
    assert BookCounter.objects.filter(book=book).exists()


def test_the_pure_check_refuses_what_the_service_would_and_writes_nothing(tenant):
    book = CouponBookFactory(tenant=tenant)
    with pytest.raises(ApplicationError) as refused:
        book_save_check(tenant=tenant, book=book, values={"budget_amount": Decimal("10")})
    assert refused.value.details == {"field": "currency"}
    book_save_check(tenant=tenant, book=book, values={"budget_amount": Decimal("10"), "currency": "EUR"})
    book.refresh_from_db()
    assert book.budget_amount is None and not BookCounter.objects.filter(book=book).exists()


def test_the_book_page_shows_the_limits_used(client, tenant):
    book = CouponBookFactory(
        tenant=tenant,
        discount_type="fixed",
        discount_value=Decimal("20"),
        currency="EUR",
        budget_amount=Decimal("100"),
        max_redemptions=10,
    )
    for i in range(3):
        CodeFactory(book=book, code=f"B-{i}", user_id=f"u{i}", state=Code.State.ASSIGNED)
    actor = Actor.system("test")
    code_redeem(tenant=tenant, code="B-0", user_id="u0", actor=actor)
    code_reserve(tenant=tenant, code="B-1", user_id="u1", actor=actor)
    logged_in(client, tenant, Role.MARKETING)

    page = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).content.decode()

    assert 'id="book-limits"' in page
    assert "1 of 10, 1 more held by checkouts in progress" in page
    assert "20.00 EUR of 100.00 EUR given, 20.00 EUR held; 60.00 EUR left" in page


def test_a_book_without_limits_shows_no_limits_panel(client, book):
    logged_in(client, book.tenant, Role.MARKETING)
    page = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).content.decode()
    assert 'id="book-limits"' not in page


@pytest.mark.django_db(transaction=True)
def test_a_limit_changed_in_the_admin_that_loses_a_deadlock_is_saved_on_the_next_run(client, tenant):
    """The admin's transaction is the outermost one around book_update: PostgreSQL failing it as a deadlock's
    victim (a recount racing recounting uses, core/transactions.py) runs the whole save again."""
    logged_in(client, tenant, Role.MARKETING)
    book = CouponBookFactory(tenant=tenant, status="active", max_redemptions=100)
    real_update, calls = book_admin.book_update, []

    def update_deadlocking_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise deadlock()
        return real_update(**kwargs)

    change = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).context["adminform"].form.initial
    fields = {**ADD_FORM, **{name: ("" if value is None else value) for name, value in change.items() if name in ADD_FORM}}
    with mock.patch.object(book_admin, "book_update", side_effect=update_deadlocking_once):
        response = client.post(reverse("admin:books_couponbook_change", args=[book.pk]), {**fields, "max_redemptions": "50"})

    assert response.status_code == 302, form_errors(response)
    assert len(calls) == 2
    book.refresh_from_db()
    assert book.max_redemptions == 50
