"""Bad input to the code lifecycle is refused at the API (the serializers), before any service runs.

The services of books/services/codes.py take typed, clean arguments (issue 11): these are the tests that fed them
bad input, moved here with the same assertions (400 invalid_input naming the field).
"""

import pytest

from books.services.codes import code_redeem
from core.actors import Actor
from redemptions.models import Redemption

from .conftest import assert_error

BAD_USER_IDS = [None, "", "   ", 42, ["ann"], "x" * 256, "nul\x00"]


@pytest.mark.parametrize("user_id", BAD_USER_IDS)
def test_a_bad_user_id_is_refused_by_every_lifecycle_endpoint(api, active_book, make_code, user_id):
    code = make_code(user_id="ann").code
    for path in [
        f"/api/v1/books/{active_book.pk}/assign/",
        f"/api/v1/codes/{code}/assign/",
        f"/api/v1/codes/{code}/lock/",
        f"/api/v1/codes/{code}/unlock/",
        f"/api/v1/codes/{code}/redeem/",
    ]:
        error = assert_error(api.post(path, {"user_id": user_id}, format="json"), 400, "invalid_input")
        assert error["details"]["field"] == "user_id", path
    assert not Redemption.objects.exists()


@pytest.mark.parametrize("amount", ["abc", "-1", -0.01, "NaN", "Infinity", "1e20", [], True])
def test_a_bad_amount_is_refused(api, make_code, amount):
    code = make_code(user_id="ann").code
    response = api.post(f"/api/v1/codes/{code}/redeem/", {"user_id": "ann", "amount": amount}, format="json")
    assert assert_error(response, 400, "invalid_input")["details"]["field"] == "amount"
    assert not Redemption.objects.exists()


@pytest.mark.parametrize("ttl", [9, 3601, 0, -5, "abc", True, 30.5, [60]])
def test_lock_refuses_a_ttl_out_of_bounds(api, make_code, ttl):
    code = make_code(user_id="ann").code
    response = api.post(f"/api/v1/codes/{code}/lock/", {"user_id": "ann", "ttl_seconds": ttl}, format="json")
    assert assert_error(response, 400, "invalid_input")["details"]["field"] == "ttl_seconds"


def test_lock_accepts_a_ttl_sent_as_a_numeric_string(api, make_code):
    code = make_code(user_id="ann").code
    response = api.post(f"/api/v1/codes/{code}/lock/", {"user_id": "ann", "ttl_seconds": "45"}, format="json")
    assert response.status_code == 201, response.content


def test_a_reversal_reason_too_long_is_refused(api, tenant, make_code):
    code = make_code(user_id="ann").code
    redemption = code_redeem(tenant=tenant, code=code, user_id="ann", actor=Actor.system("test"))
    response = api.post(f"/api/v1/redemptions/{redemption.pk}/reverse/", {"reason": "x" * 1001}, format="json")
    assert assert_error(response, 400, "invalid_input")["details"]["field"] == "reason"
    assert Redemption.objects.get(pk=redemption.pk).reversed_at is None


@pytest.mark.parametrize("currency", [None, "", "eur", "EURO", "E1R", "€", 978, ["EUR"]])
def test_an_amount_needs_a_valid_currency(api, make_code, currency):
    code = make_code(user_id="ann").code
    sent = {"user_id": "ann", "amount": "10", "currency": currency}
    response = api.post(f"/api/v1/codes/{code}/redeem/", sent, format="json")
    assert assert_error(response, 400, "invalid_input")["details"]["field"] == "currency"
    assert not Redemption.objects.exists()
