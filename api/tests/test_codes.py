"""The code lifecycle over the API: look-up, assign, lock, unlock, redeem, validate, a user's codes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from books.models import Code, Reservation
from redemptions.models import Redemption
from tests.factories import CodeFactory, CouponBookFactory

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def test_code_detail_matches_case_insensitively(api, make_code):
    code = make_code(user_id="bob")
    body = api.get(f"/api/v1/codes/{code.code.lower()}/").json()
    assert body["code"] == code.code and body["state"] == "assigned" and body["user_id"] == "bob" and body["uses_left"] == 1
    assert_error(api.get("/api/v1/codes/NO-SUCH-CODE/"), 404, "code_not_found")


def test_assign_a_specific_code_is_200_and_idempotent_for_the_same_user(api, make_code):
    code = make_code()
    url = f"/api/v1/codes/{code.code}/assign/"
    first = api.post(url, {"user_id": "bob"}, format="json")
    assert first.status_code == 200 and first.json()["user_id"] == "bob"
    assert api.post(url, {"user_id": "bob"}, format="json").status_code == 200
    assert_error(api.post(url, {"user_id": "eve"}, format="json"), 409, "code_already_assigned")
    assert Code.objects.get(pk=code.pk).user_id == "bob"


def test_lock_unlock_lock_redeem(api, make_code):
    code = make_code(user_id="bob")
    lock = api.post(f"/api/v1/codes/{code.code}/lock/", {"user_id": "bob", "ttl_seconds": 60}, format="json")
    assert lock.status_code == 201
    token = lock.json()["token"]
    assert lock.json()["code"] == code.code
    assert_error(api.post(f"/api/v1/codes/{code.code}/lock/", {"user_id": "bob"}, format="json"), 409)
    unlock = api.post(f"/api/v1/codes/{code.code}/unlock/", {"user_id": "bob", "token": token}, format="json")
    assert unlock.status_code == 200 and unlock.json() == {"released": 1}
    relock = api.post(f"/api/v1/codes/{code.code}/lock/", {"user_id": "bob"}, format="json")
    assert relock.status_code == 201
    redeem = api.post(
        f"/api/v1/codes/{code.code}/redeem/",
        {"user_id": "bob", "token": relock.json()["token"], "order_ref": "order-1", "amount": "80.00", "currency": "EUR"},
        format="json",
    )
    assert redeem.status_code == 201, redeem.json()
    body = redeem.json()
    assert body["discount"] == "8.00" and body["order_ref"] == "order-1" and body["actor_type"] == "api_client"
    assert (body["amount"], body["currency"]) == ("80.00", "EUR")
    assert Code.objects.get(pk=code.pk).state == "redeemed"
    assert_error(api.post(f"/api/v1/codes/{code.code}/redeem/", {"user_id": "bob"}, format="json"), 409, "code_exhausted")


def test_unlock_with_an_unknown_token_answers_404(api, make_code):
    code = make_code(user_id="bob")
    response = api.post(f"/api/v1/codes/{code.code}/unlock/", {"user_id": "bob", "token": "nope"}, format="json")
    assert_error(response, 404, "reservation_not_found")


def test_redeem_with_an_expired_reservation_answers_409(api, make_code):
    code = make_code(user_id="bob")
    reservation = Reservation.objects.create(
        tenant=code.tenant,
        book=code.book,
        code=code,
        user_id="bob",
        token="tok-expired",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    response = api.post(f"/api/v1/codes/{code.code}/redeem/", {"user_id": "bob", "token": reservation.token}, format="json")
    assert_error(response, 409, "reservation_expired")
    assert not Redemption.objects.exists()


def test_lock_on_a_paused_book_answers_409(api, tenant):
    book = CouponBookFactory(tenant=tenant, status="paused")
    code = CodeFactory(book=book, code="PAUSED-1", user_id="bob", state="assigned")
    assert_error(api.post(f"/api/v1/codes/{code.code}/lock/", {"user_id": "bob"}, format="json"), 409, "book_not_active")


def test_validate_answers_valid_reason_and_discount_and_changes_nothing(api, make_code):
    code = make_code(user_id="bob")
    ok = api.get(f"/api/v1/codes/{code.code}/validate/", {"user_id": "bob", "amount": "50", "currency": "USD"}).json()
    assert ok == {"valid": True, "reason": "ok", "message": ok["message"], "discount": "5.00", "currency": "USD"}
    other = api.get(f"/api/v1/codes/{code.code}/validate/", {"user_id": "eve"}).json()
    assert other["valid"] is False and other["reason"] == "code_not_assigned_to_user" and other["discount"] is None
    assert not Reservation.objects.exists() and not Redemption.objects.exists()


def test_a_users_codes_filtered_by_book(api, tenant, make_code, active_book):
    mine = make_code(user_id="bob")
    other_book = CouponBookFactory(tenant=tenant)
    CodeFactory(book=other_book, code="OTHER-BOOK-1", user_id="bob", state="assigned")
    make_code(user_id="eve")
    all_codes = api.get("/api/v1/users/bob/codes/").json()
    assert {c["code"] for c in all_codes["results"]} == {mine.code, "OTHER-BOOK-1"}
    only = api.get("/api/v1/users/bob/codes/", {"book": active_book.pk}).json()["results"]
    assert [c["code"] for c in only] == [mine.code]
    assert_error(api.get("/api/v1/users/bob/codes/", {"book": 999999}), 404, "book_not_found")


def test_an_end_user_runs_their_own_lifecycle(end_user, make_code):
    code = make_code(user_id="alice")
    assert end_user.get(f"/api/v1/codes/{code.code}/validate/").json()["valid"] is True
    lock = end_user.post(f"/api/v1/codes/{code.code}/lock/", {"user_id": "alice"}, format="json")
    assert lock.status_code == 201
    assert end_user.post(f"/api/v1/codes/{code.code}/unlock/", {}, format="json").json() == {"released": 1}
    redeem = end_user.post(f"/api/v1/codes/{code.code}/redeem/", {"order_ref": "web-1"}, format="json")
    assert redeem.status_code == 201
    assert redeem.json()["user_id"] == "alice" and redeem.json()["actor_type"] == "end_user"
    listed = end_user.get("/api/v1/users/alice/codes/").json()["results"]
    assert [c["code"] for c in listed] == [code.code]


# --- Currency -------------------------------------------------------------------------------------------------


def test_redeem_and_validate_refuse_another_currency_than_the_books(api, tenant):
    book = CouponBookFactory(tenant=tenant, status="active", discount_type="fixed", discount_value="5", currency="EUR")
    CodeFactory(book=book, code="FIXED-EUR", user_id="bob", state="assigned")
    order = {"user_id": "bob", "amount": "30.00", "currency": "USD"}
    validation = api.get("/api/v1/codes/FIXED-EUR/validate/", order).json()
    assert (validation["valid"], validation["reason"], validation["currency"]) == (False, "currency_mismatch", "")
    error = assert_error(api.post("/api/v1/codes/FIXED-EUR/redeem/", order, format="json"), 409, "currency_mismatch")
    assert error["details"] == {"currency": "USD", "book_currency": "EUR"}
    assert not Redemption.objects.exists()
    redeemed = api.post("/api/v1/codes/FIXED-EUR/redeem/", {**order, "currency": "EUR"}, format="json")
    assert redeemed.status_code == 201
    assert (redeemed.json()["discount"], redeemed.json()["currency"]) == ("5.00", "EUR")


@pytest.mark.parametrize(
    "sent",
    [{"amount": "30.00"}, {"amount": "30.00", "currency": "eur"}, {"amount": "30.00", "currency": "EURO"}, {"currency": 978}],
)
def test_an_amount_without_a_valid_currency_is_invalid_input(api, make_code, sent):
    code = make_code(user_id="bob")
    for response in (
        api.post(f"/api/v1/codes/{code.code}/redeem/", {"user_id": "bob", **sent}, format="json"),
        api.get(f"/api/v1/codes/{code.code}/validate/", {"user_id": "bob", **sent}),
    ):
        assert assert_error(response, 400, "invalid_input")["details"]["field"] == "currency"
    assert not Redemption.objects.exists()
