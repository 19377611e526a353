"""Real concurrency over HTTP against PostgreSQL: a live server on 127.0.0.1 and parallel clients."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from books.models import Code
from redemptions.models import Redemption
from tenants.services import api_client_create
from tests.factories import CodeFactory, CouponBookFactory

from .httpclient import http_call

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PARALLEL = 30


def test_thirty_parallel_redeems_of_the_last_use_give_exactly_one_201(live_server, tenant, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A shared promo code (no assignment) with 3 uses, 2 of them already redeemed: one use is left.
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=3, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="LAST-USE", redeemed_count=2)
    issued = api_client_create(tenant=tenant, name="Load")
    base = live_server.url
    token = http_call(
        base, "POST", "/api/v1/auth/token/", {"client_id": issued.client.client_id, "client_secret": issued.secret}
    ).json()["access"]

    def redeem(n: int):
        return http_call(
            base,
            "POST",
            "/api/v1/codes/LAST-USE/redeem/",
            {"user_id": f"shopper-{n}", "order_ref": f"o-{n}"},
            token=token,
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        answers = list(pool.map(redeem, range(PARALLEL)))

    statuses = sorted(a.status for a in answers)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) == {201, 409}, statuses
    assert {a.json()["error"]["code"] for a in answers if a.status == 409} <= {"code_exhausted", "code_locked"}
    code.refresh_from_db()
    assert code.redeemed_count == 3 and code.state == Code.State.REDEEMED
    assert Redemption.objects.filter(code=code).count() == 1


def test_parallel_retries_with_one_idempotency_key_redeem_once(live_server, tenant, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=None, max_redemptions_per_user=None)
    CodeFactory(book=book, code="RETRY-ME", max_uses=None)
    issued = api_client_create(tenant=tenant, name="Retries")
    base = live_server.url
    token = http_call(
        base, "POST", "/api/v1/auth/token/", {"client_id": issued.client.client_id, "client_secret": issued.secret}
    ).json()["access"]
    body = {"user_id": "shopper", "order_ref": "o-1"}

    def redeem(_):
        return http_call(
            base, "POST", "/api/v1/codes/RETRY-ME/redeem/", body, token=token, headers={"Idempotency-Key": "o-1"}, timeout=60
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(redeem, range(10)))

    assert {a.status for a in answers} == {201}, [(a.status, a.content[:200]) for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert Redemption.objects.count() == 1
