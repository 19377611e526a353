"""Dates the tenant's calendar cannot hold (SPEC "Abuse resistance"): one rule (books.inputs.clean_moment) refuses
them wherever a client or staff member sends them (see also api/tests/test_date_bounds.py), so no row that breaks a
page later is ever stored."""

from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from books.inputs import clean_day, clean_moment
from books.models import CouponBook
from core.exceptions import ApplicationError
from tenants.models import Role
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "day", "time"), [("valid_from", "0001-01-01", "00:00:00"), ("valid_until", "9999-12-31", "23:00:00")]
)
def test_the_admin_book_form_shows_an_error_and_the_lists_keep_working(client, tenant, field, day, time):
    tenant.timezone = "America/New_York" if field == "valid_until" else "Europe/Berlin"
    tenant.save()
    logged_in(client, tenant, Role.ADMIN)
    data = {
        "name": "Calendar edge",
        "description": "",
        "status": "active",
        "discount_type": "percent",
        "discount_value": "10",
        "currency": "",
        "product_ids": "",
        f"{field}_0": day,
        f"{field}_1": time,
        "uses_per_code": "1",
        "max_codes_per_user": "1",
        "max_redemptions_per_user": "1",
        "requires_assignment": "on",
        "lock_ttl_seconds": "300",
    }
    answer = client.post(reverse("admin:books_couponbook_add"), data)
    assert answer.status_code == 200  # the form again, with the error
    assert "between the years 2 and 9998" in answer.content.decode()
    assert not CouponBook.objects.exists()
    assert client.get(reverse("admin:books_couponbook_changelist")).status_code == 200


def test_one_rule_for_moments_and_days():
    assert clean_moment(datetime(2026, 5, 1, tzinfo=UTC), field="x").year == 2026
    assert clean_day(date(9998, 12, 31), field="x") == date(9998, 12, 31)
    for bad in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 12, tzinfo=UTC)):
        with pytest.raises(ApplicationError):
            clean_moment(bad, field="x")
    with pytest.raises(ApplicationError):
        clean_day(date(9999, 1, 1), field="x")
