"""Validate and a user's codes at the edge: ValidateQuery and the user-codes view clean the user id and the amount
before the selectors run (moved here from the selector tests when the selectors began to take typed values)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import AssignedCodeFactory, CouponBookFactory

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def test_validate_refuses_bad_input(api, tenant):
    AssignedCodeFactory(book=CouponBookFactory(tenant=tenant), code="MINE3", user_id="ann")
    error = assert_error(api.get("/api/v1/codes/MINE3/validate/", {"user_id": " "}), 400, "invalid_input")
    assert error["details"]["field"] == "user_id"
    error = assert_error(api.get("/api/v1/codes/MINE3/validate/", {"user_id": "ann", "amount": "-3"}), 400, "invalid_input")
    assert error["details"]["field"] == "amount"


def test_user_codes_read_the_user_id_stripped_and_refuse_a_blank_one(api, tenant):
    book = CouponBookFactory(tenant=tenant)
    older = AssignedCodeFactory(book=book, code="OLDER", user_id="ann", assigned_at=timezone.now() - timedelta(days=2))
    AssignedCodeFactory(book=CouponBookFactory(tenant=tenant), code="NEWER", user_id="ann")
    response = api.get("/api/v1/users/%20ann%20/codes/", {"book": book.pk})
    assert response.status_code == 200, response.json()
    assert [row["code"] for row in response.json()["results"]] == [older.code]
    error = assert_error(api.get("/api/v1/users/%20%20/codes/"), 400, "invalid_input")
    assert error["details"]["field"] == "user_id"


def test_user_codes_of_a_book_that_is_not_a_number_is_refused(api):
    assert assert_error(api.get("/api/v1/users/ann/codes/", {"book": "x"}), 400, "invalid_input")["details"]["field"] == "book"
