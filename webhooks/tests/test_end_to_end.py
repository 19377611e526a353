"""End to end over a real HTTP receiver on 127.0.0.1: lifecycle calls as integrators and staff make them (the API,
the beat task, the admin), their deliveries sent by the Celery task queued on commit, verified as a receiver
would verify them. Plus the burst: 1,000 concurrent redemptions, 1,000 deliveries, each code's in order."""

import threading
from collections import defaultdict
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from api.services import api_tokens_issue
from api.tests.conftest import bearer
from books.models import Event, Reservation
from books.services.books import book_update
from books.services.codes import code_assign, code_redeem, code_reserve
from books.tasks import expire_reservations
from core.actors import Actor
from redemptions.models import Redemption
from tenants.models import Role
from tenants.services import api_client_create
from tests.factories import CodeFactory, CouponBookFactory
from tests.helpers import logged_in
from webhooks.models import WebhookDelivery
from webhooks.services import deliveries_send

from .conftest import verify

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api(tenant, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    issued = api_client_create(tenant=tenant, name="Shop checkout")
    return bearer(api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)["access"])


def test_a_redeem_through_the_api_delivers_one_signed_code_redeemed(api, tenant, endpoint, receiver, eager_celery):
    book = CouponBookFactory(tenant=tenant)
    CodeFactory(book=book, code="E2E-REDEEM")
    code_assign(tenant=tenant, code="E2E-REDEEM", user_id="alice", actor=Actor.system("test"))
    receiver.requests.clear()

    response = api.post(
        "/api/v1/codes/e2e-redeem/redeem/",
        {"user_id": "alice", "order_ref": "ORDER-1", "amount": "80.00", "currency": "EUR"},
        format="json",
    )

    assert response.status_code == 201, response.content
    (got,) = receiver.of_type("code.redeemed")
    body = verify(got, endpoint.secret)
    redemption = Redemption.objects.get()
    assert body["data"]["code"] == "E2E-REDEEM" and body["data"]["user_id"] == "alice"
    assert body["data"]["redemption"] == redemption.pk and body["data"]["order_ref"] == "ORDER-1"
    assert body["data"]["state"] == "redeemed" and body["data"]["book"] == book.pk
    delivery = WebhookDelivery.objects.get(event_type="code.redeemed")
    assert (delivery.status, delivery.attempts, got.headers["webhook-id"]) == ("succeeded", 1, delivery.message_id)


def test_a_lock_left_to_expire_delivers_code_lock_expired_when_beat_runs(tenant, endpoint, receiver, eager_celery):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, max_codes_per_user=None)
    CodeFactory(book=book, code="E2E-EXPIRE")
    held = code_reserve(tenant=tenant, code="E2E-EXPIRE", user_id="bob", actor=Actor.system("test"))
    assert [r.json["type"] for r in receiver.requests] == ["code.locked"]
    Reservation.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    expire_reservations()  # the beat task

    (got,) = receiver.of_type("code.lock_expired")
    body = verify(got, endpoint.secret)
    assert body["data"]["code"] == "E2E-EXPIRE" and body["data"]["user_id"] == "bob"
    assert body["data"]["reservation"]["id"] == held.pk and "token" not in got.body
    assert body["data"]["actor"] == {"type": "system", "id": "expiry"}


def test_a_reversal_in_the_admin_delivers_redemption_reversed(client, tenant, endpoint, receiver, eager_celery):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, max_codes_per_user=None)
    CodeFactory(book=book, code="E2E-REVERSE")
    redemption = code_redeem(tenant=tenant, code="E2E-REVERSE", user_id="carol", actor=Actor.system("test"))
    logged_in(client, tenant, Role.ADMIN)

    client.post(
        reverse("admin:redemptions_redemption_changelist"),
        {"action": "reverse_redemptions", "_selected_action": [redemption.pk], "post": "yes", "reason": "returned"},
    )

    (got,) = receiver.of_type("redemption.reversed")
    body = verify(got, endpoint.secret)
    assert body["data"]["redemption"] == redemption.pk and body["data"]["reason"] == "returned"
    assert body["data"]["actor"]["type"] == "staff" and body["data"]["state"] == "free"
    assert [r.json["type"] for r in receiver.requests] == ["code.redeemed", "redemption.reversed"]


def test_a_book_change_and_a_finished_job_are_delivered(tenant, endpoint, receiver, eager_celery, settings):
    from books.services.code_creation import generation_request

    book = CouponBookFactory(tenant=tenant)
    book_update(book=book, status="paused", name="Autumn")
    (changed,) = receiver.of_type("book.updated")
    assert verify(changed, endpoint.secret)["data"] == {
        "book": book.pk,
        "name": "Autumn",
        "status": "paused",
        "changed": ["name", "status"],
    }

    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 5}
    job = generation_request(book=book, count=20, actor=Actor.system("test"), pattern="JOB-####-??")  # a job, run eagerly
    (finished,) = receiver.of_type("job.finished")
    data = verify(finished, endpoint.secret)["data"]
    assert (data["job"], data["kind"], data["status"], data["done"], data["total"]) == (job.pk, "generate", "succeeded", 20, 20)


def test_1000_redemptions_in_a_burst_make_1000_deliveries_in_order_per_code(tenant, endpoint, receiver, wakes):
    codes, uses, threads = 50, 20, 8
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=uses, max_redemptions_per_user=None)
    values = [f"BURST-{n:03d}" for n in range(codes)]
    for value in values:
        CodeFactory(book=book, code=value)
    work = [(values[(n * 7) % codes], f"user-{n}") for n in range(codes * uses)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def redeem(share):
        from django.db import connection

        try:
            barrier.wait()
            for value, user in share:
                code_redeem(tenant=tenant, code=value, user_id=user, actor=Actor.system("burst"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=redeem, args=(work[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert Redemption.objects.count() == 1000
    deliveries = list(WebhookDelivery.objects.filter(event_type="code.redeemed").order_by("pk"))
    assert len(deliveries) == 1000
    assert sorted(pk for ids in wakes for pk in ids if pk in {d.pk for d in deliveries}) == [d.pk for d in deliveries]
    # The outbox's order per code is the order of the code's history.
    events_by_code: dict[str, list[int]] = defaultdict(list)
    for delivery in deliveries:
        events_by_code[delivery.ordering_key].append(_event_id(delivery.body))
    assert len(events_by_code) == codes
    for key, event_ids in events_by_code.items():
        code_id = int(key.split(":")[1])
        history = list(
            Event.objects.filter(code_id=code_id, kind="redeemed").order_by("created_at", "pk").values_list("pk", flat=True)
        )
        assert event_ids == history, key

    # Sent in shuffled batches, as concurrent wake-ups and the sweeper would: each code's events still arrive in order.
    batches = [[d.pk for d in deliveries][i::5] for i in range(5)]
    for batch in reversed(batches):
        deliveries_send(delivery_ids=batch)
    assert WebhookDelivery.objects.exclude(status="succeeded").count() == 0
    assert len(receiver.requests) == 1000
    arrived: dict[str, list[int]] = defaultdict(list)
    for request in receiver.requests:
        data = request.json["data"]
        arrived[data["code"]].append(data["event"])
    assert all(ids == sorted(ids) and len(ids) == uses for ids in arrived.values())


def _event_id(body: str) -> int:
    import json

    return json.loads(body)["data"]["event"]
