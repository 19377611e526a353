"""Dates the tenant's calendar cannot hold, through the API: the one rule (books.inputs) answers 400."""

import pytest

from books.models import CouponBook
from books.services.books import book_create

from .conftest import assert_error

pytestmark = pytest.mark.django_db

OUT_OF_RANGE = [
    ("valid_from", "0001-01-01T00:00:00+01:00"),
    ("valid_from", "0001-01-01T00:00:00Z"),
    ("valid_until", "9999-12-31T23:00:00-05:00"),
    ("valid_until", "9999-12-31T23:59:59Z"),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_the_api_refuses_a_book_date_no_time_zone_can_show(api, field, value):
    error = assert_error(api.post("/api/v1/books/", {"name": "Far away", field: value}, format="json"), 400, "invalid_input")
    assert CouponBook.objects.count() == 0, error


def test_the_api_refuses_it_on_change_too_and_the_book_page_still_answers(api, tenant):
    book = book_create(tenant=tenant, name="Near")
    answer = api.patch(f"/api/v1/books/{book.pk}/", {"valid_until": "9999-12-31T23:00:00-05:00"}, format="json")
    assert_error(answer, 400, "invalid_input")
    assert api.get(f"/api/v1/books/{book.pk}/").status_code == 200


@pytest.mark.parametrize("query", ["from=0001-01-01", "to=9999-12-31", "from=9999-12-31T23:00:00-05:00", "active_on=9999-12-31"])
def test_list_filters_refuse_dates_out_of_range(api, query):
    path = "/api/v1/books/" if query.startswith("active_on") else "/api/v1/redemptions/"
    assert_error(api.get(f"{path}?{query}"), 400, "invalid_input")
