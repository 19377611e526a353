"""The integrator's whole campaign over real HTTP (a live server on 127.0.0.1): create a book, upload and
generate codes, assign (random and specific), lock, unlock, lock again, redeem, list the user's codes, list and
export redemptions, reverse one."""

import io

import pytest
from openpyxl import load_workbook

from books.models import Code
from redemptions.models import Redemption
from tenants.services import api_client_create

from .httpclient import http_call

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_campaign_end_to_end_over_http(live_server, tenant, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    issued = api_client_create(tenant=tenant, name="Checkout")
    base = live_server.url

    def call(method, path, body=None, **headers):
        return http_call(base, method, path, body, token=token, headers=headers)

    token = ""
    tokens = call("POST", "/api/v1/auth/token/", {"client_id": issued.client.client_id, "client_secret": issued.secret})
    assert tokens.status == 200, tokens.content
    token = tokens.json()["access"]

    book = call(
        "POST",
        "/api/v1/books/",
        {
            "name": "Spring campaign",
            "status": "active",
            "discount_value": "15",
            "max_codes_per_user": 2,
            "max_redemptions_per_user": 2,
        },
    )
    assert book.status == 201, book.content
    book_id = book.json()["id"]

    upload = call("POST", f"/api/v1/books/{book_id}/codes/upload/", {"codes": ["SPRING-A", "spring-b"]})
    assert upload.status == 201 and upload.json()["created"] == 2
    generate = call("POST", f"/api/v1/books/{book_id}/codes/generate/", {"count": 5, "pattern": "SPR-********"})
    assert generate.status == 201 and generate.json()["created"] == 5
    listed = call("GET", f"/api/v1/books/{book_id}/codes/?state=free")
    assert len(listed.json()["results"]) == 7

    random_code = call("POST", f"/api/v1/books/{book_id}/assign/", {"user_id": "customer-1"})
    assert random_code.status == 201 and random_code.json()["user_id"] == "customer-1"
    specific = call("POST", "/api/v1/codes/spring-a/assign/", {"user_id": "customer-1"})
    assert specific.status == 200 and specific.json()["user_id"] == "customer-1"

    lock = call("POST", "/api/v1/codes/SPRING-A/lock/", {"user_id": "customer-1", "ttl_seconds": 120})
    assert lock.status == 201, lock.content
    unlock = call("POST", "/api/v1/codes/SPRING-A/unlock/", {"user_id": "customer-1", "token": lock.json()["token"]})
    assert unlock.status == 200 and unlock.json()["released"] == 1
    relock = call("POST", "/api/v1/codes/SPRING-A/lock/", {"user_id": "customer-1"})
    assert relock.status == 201
    valid = call("GET", "/api/v1/codes/SPRING-A/validate/?user_id=customer-1&amount=40&currency=EUR")
    assert valid.json()["valid"] is True and valid.json()["discount"] == "6.00"
    redeem_body = {
        "user_id": "customer-1",
        "token": relock.json()["token"],
        "order_ref": "ORD-1",
        "amount": "40.00",
        "currency": "EUR",
    }
    redeemed = call("POST", "/api/v1/codes/SPRING-A/redeem/", redeem_body, **{"Idempotency-Key": "ORD-1-redeem"})
    assert redeemed.status == 201, redeemed.content
    replay = call("POST", "/api/v1/codes/SPRING-A/redeem/", redeem_body, **{"Idempotency-Key": "ORD-1-redeem"})
    assert replay.status == 201 and replay.json() == redeemed.json()

    mine = call("GET", "/api/v1/users/customer-1/codes/")
    assert {c["code"] for c in mine.json()["results"]} == {"SPRING-A", random_code.json()["code"]}
    log = call("GET", f"/api/v1/redemptions/?book={book_id}")
    assert [r["id"] for r in log.json()["results"]] == [redeemed.json()["id"]]
    export = call("GET", f"/api/v1/redemptions/export/?book={book_id}")
    assert export.status == 200
    workbook = load_workbook(io.BytesIO(export.content), read_only=True)
    cells = {str(c) for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True) for c in row}
    assert "SPRING-A" in cells and "ORD-1" in cells

    reverse = call("POST", f"/api/v1/redemptions/{redeemed.json()['id']}/reverse/", {"reason": "returned"})
    assert reverse.status == 200 and reverse.json()["reversed"] is True
    stats = call("GET", f"/api/v1/books/{book_id}/stats/").json()
    assert stats["redemptions"] == 0 and stats["reversed"] == 1 and stats["codes"]["total"] == 7

    assert Redemption.objects.count() == 1
    assert Code.objects.get(code="SPRING-A", tenant=tenant).redeemed_count == 0
