"""Campaign limits over the API: the book's fields (create, update, read), and the 409 codes of redeem, lock and
validate (books/tests/test_campaign_limits.py proves the limits under concurrency)."""

import pytest

from books.models import BookCounter, Code

from .conftest import assert_error

pytestmark = pytest.mark.django_db

LIMITS = {"max_redemptions": 2, "budget_amount": "30.00", "min_order_amount": "50.00", "max_discount_amount": None}


def create_book(api, **fields) -> dict:
    response = api.post("/api/v1/books/", {"name": "First customers", "status": "active", **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def add_codes(api, book: dict, count: int) -> None:
    codes = [f"FIRST-{i}" for i in range(count)]
    assert api.post(f"/api/v1/books/{book['id']}/codes/upload/", {"codes": codes}, format="json").status_code == 201
    for i, code in enumerate(codes):
        assert api.post(f"/api/v1/codes/{code}/assign/", {"user_id": f"user-{i}"}, format="json").status_code == 200


def redeem(api, i: int, **body):
    if "amount" in body:
        body["currency"] = "EUR"
    return api.post(f"/api/v1/codes/FIRST-{i}/redeem/", {"user_id": f"user-{i}", **body}, format="json")


def test_a_book_is_created_read_and_changed_with_its_limits(api):
    book = create_book(api, discount_type="fixed", discount_value="20", currency="eur", **LIMITS)
    assert {field: book[field] for field in LIMITS} == LIMITS
    assert BookCounter.objects.filter(book_id=book["id"]).exists()

    read = api.get(f"/api/v1/books/{book['id']}/").json()
    assert {field: read[field] for field in LIMITS} == LIMITS

    changed = api.patch(f"/api/v1/books/{book['id']}/", {"max_redemptions": None, "budget_amount": "45.5"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["max_redemptions"], changed.json()["budget_amount"]) == (None, "45.50")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"budget_amount": "100"}, "currency"),
        ({"budget_amount": "0", "currency": "EUR"}, "budget_amount"),
        ({"budget_amount": "-1", "currency": "EUR"}, "budget_amount"),
        ({"max_redemptions": 0}, "max_redemptions"),
        ({"min_order_amount": "ten"}, "min_order_amount"),
        ({"discount_type": "fixed", "currency": "EUR", "max_discount_amount": "5"}, "max_discount_amount"),
    ],
)
def test_bad_limits_answer_400_naming_the_field(api, fields, field):
    response = api.post("/api/v1/books/", {"name": "Bad", **fields}, format="json")
    assert_error(response, 400, "invalid_input")
    assert response.json()["error"]["details"]["field"] == field


def test_redeem_answers_each_limit_with_its_409(api):
    book = create_book(api, discount_type="fixed", discount_value="20", currency="EUR", max_redemptions=2, budget_amount="30")
    add_codes(api, book, 3)

    assert redeem(api, 0, amount="80.00").status_code == 201
    assert_error(redeem(api, 1, amount="80.00"), 409, "book_budget_exhausted")  # 20 + 20 > 30
    api.patch(f"/api/v1/books/{book['id']}/", {"budget_amount": None}, format="json")
    assert redeem(api, 1, amount="80.00").status_code == 201
    assert_error(redeem(api, 2, amount="80.00"), 409, "book_redemption_limit_reached")
    lock = api.post("/api/v1/codes/FIRST-2/lock/", {"user_id": "user-2"}, format="json")
    assert_error(lock, 409, "book_redemption_limit_reached")
    validate = api.get("/api/v1/codes/FIRST-2/validate/", {"user_id": "user-2"}).json()
    assert (validate["valid"], validate["reason"]) == (False, "book_redemption_limit_reached")
    limits = api.get(f"/api/v1/books/{book['id']}/stats/").json()["limits"]
    assert limits == {
        "max_redemptions": 2,
        "redemptions": 2,
        "budget_amount": None,
        "discount": "40.00",
        "held": 0,
        "held_discount": "0.00",
        "budget_left": None,
    }


def test_stats_of_a_book_without_limits_say_null(api):
    book = create_book(api)
    assert api.get(f"/api/v1/books/{book['id']}/stats/").json()["limits"] is None


def test_redeem_below_the_minimum_or_without_the_amount_is_409(api):
    book = create_book(api, discount_value="10", min_order_amount="50", max_discount_amount="3")
    add_codes(api, book, 1)

    assert_error(redeem(api, 0, amount="49.99"), 409, "order_below_minimum")
    assert_error(redeem(api, 0), 409, "order_amount_required")
    validate = api.get("/api/v1/codes/FIRST-0/validate/", {"user_id": "user-0", "amount": "20", "currency": "EUR"}).json()
    assert (validate["valid"], validate["reason"]) == (False, "order_below_minimum")
    validate = api.get("/api/v1/codes/FIRST-0/validate/", {"user_id": "user-0", "amount": "100", "currency": "EUR"}).json()
    assert (validate["valid"], validate["discount"]) == (True, "3.00")  # 10 % of 100, capped at 3

    redeemed = redeem(api, 0, amount="100")
    assert redeemed.status_code == 201 and redeemed.json()["discount"] == "3.00"
    assert Code.objects.get(code="FIRST-0").redeemed_count == 1
