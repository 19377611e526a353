"""CPU of the API layer alone per checkout cycle: `python -m bench.profile_http_layer [cycles]`.

First the whole cycle (the real services) is measured; then the three lifecycle services are replaced by stubs
that return the rows of one real cycle, so what is measured is everything around them: middleware,
authentication, throttles (Redis when REDIS_URL is set), the Idempotency-Key's statements, parsing and rendering,
through Django's test client and the WSGI application gunicorn serves. Prints the CPU per cycle (best of three
runs) without and with an Idempotency-Key on each call. README "Performance" keeps the figures; the services' own
cost is `bench cycle` / `bench.profile_cycle`.
"""

import json
import os
import sys
import time

from .common import django_setup, tables_truncate

RATES = ("WRITE", "READ", "LOOKUP_FAILED", "LOOKUP_FAILED_CLIENT")


def main(cycles: int) -> None:
    for scope in RATES:  # the counters are hit as usual, never refused
        os.environ[f"API_RATE_{scope}"] = "100000000/min"
    django_setup()
    from django.test import Client

    import api.views.books as book_views
    import api.views.codes as code_views
    from api.services import api_tokens_issue
    from books.services.code_creation import codes_generate
    from books.services.codes import code_assign_random, code_redeem, code_reserve
    from core.actors import Actor
    from tenants.services import api_client_create
    from tests.factories import CouponBookFactory, TenantFactory

    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    actor = Actor.system("profile")
    codes_generate(book=book, count=6 * cycles + 200, actor=actor)
    issued = api_client_create(tenant=tenant, name="profile")
    token = api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)["access"]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def real_cycle(user: str, keys: bool) -> None:
        def post(path: str, body: dict, step: str) -> dict:
            extra = {"HTTP_IDEMPOTENCY_KEY": f"{user}-{step}"} if keys else {}
            response = client.post(path, json.dumps(body), content_type="application/json", **extra)
            assert response.status_code == 201, response.content[:300]
            return response.json()

        value = post(f"/api/v1/books/{book.pk}/assign/", {"user_id": user}, "assign")["code"]
        lock = post(f"/api/v1/codes/{value}/lock/", {"user_id": user}, "lock")
        post(
            f"/api/v1/codes/{value}/redeem/",
            {"user_id": user, "token": lock["token"], "amount": "25.00", "currency": "EUR"},
            "redeem",
        )

    for i in range(20):
        real_cycle(f"warm-real-{i}", True)
    _report("whole cycle, real services", real_cycle, cycles, runs=2)
    code = code_assign_random(tenant=tenant, book_id=book.pk, user_id="profile", actor=actor)
    reservation = code_reserve(tenant=tenant, code=code.code, user_id="profile", actor=actor)
    redemption = code_redeem(tenant=tenant, code=code.code, user_id="profile", actor=actor, token=reservation.token)
    book_views.code_assign_random = lambda **kwargs: code
    code_views.code_reserve = lambda **kwargs: reservation
    code_views.code_redeem = lambda **kwargs: redemption

    def cycle(user: str, keys: bool) -> None:
        def post(path: str, body: dict, step: str) -> None:
            extra = {"HTTP_IDEMPOTENCY_KEY": f"{user}-{step}"} if keys else {}
            response = client.post(path, json.dumps(body), content_type="application/json", **extra)
            assert response.status_code == 201, response.content[:300]

        post(f"/api/v1/books/{book.pk}/assign/", {"user_id": user}, "assign")
        post(f"/api/v1/codes/{code.code}/lock/", {"user_id": user}, "lock")
        post(
            f"/api/v1/codes/{code.code}/redeem/",
            {"user_id": user, "token": reservation.token, "amount": "25.00", "currency": "EUR"},
            "redeem",
        )

    for i in range(30):
        cycle(f"warm-{i}", True)  # imports, the connection, the credential entry, the prebuilt shapes
    _report("API layer, services stubbed", cycle, cycles, runs=3)


def _report(what: str, cycle, cycles: int, *, runs: int) -> None:
    for keys in (False, True):
        measured = []
        for run in range(runs):
            started = time.process_time()
            for i in range(cycles):
                cycle(f"{what[:3]}{run}-{keys}-{i}", keys)
            measured.append((time.process_time() - started) / cycles * 1000)
        key = "on each call" if keys else "none"
        print(f"{what}, Idempotency-Key {key}: {min(measured):.2f} ms CPU per cycle (best of {runs} x {cycles})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
