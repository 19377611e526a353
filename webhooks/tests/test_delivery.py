"""Sending deliveries: the signature a receiver verifies, retries with backoff (time injected, never slept),
giving up after three days, disabling an endpoint after five days of failures, leases, order per code, the
outbox written with the change (or not at all)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from books.services.codes import code_release, code_reserve
from tests.factories import CodeFactory, CouponBookFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import (
    RETRY_BASE,
    RETRY_JITTER,
    deliveries_due,
    deliveries_send,
    delivery_attempt,
    delivery_retry,
    outbox_add,
    retry_delay,
    webhook_endpoint_update,
    webhook_ping,
    webhook_secret_rotate,
)

from .conftest import verify

pytestmark = pytest.mark.django_db


def _delivery(endpoint, event_type="code.redeemed", **data) -> WebhookDelivery:
    (delivery_id,) = outbox_add(
        tenant_id=endpoint.tenant_id, event_type=event_type, data=data or {"code": "X1"}, occurred_at=timezone.now()
    )
    return WebhookDelivery.objects.get(pk=delivery_id)


def test_a_delivery_is_signed_as_standard_webhooks_says(endpoint, receiver):
    delivery = _delivery(endpoint, code="SIGNED1")

    (outcome,) = deliveries_send(delivery_ids=[delivery.pk])

    assert outcome.succeeded
    (got,) = receiver.requests
    body = verify(got, endpoint.secret)
    assert body["type"] == "code.redeemed" and body["data"] == {"code": "SIGNED1"} and body["timestamp"]
    assert got.headers["webhook-id"] == delivery.message_id
    assert got.headers["content-type"] == "application/json"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code == 200 and attempt.response_body == '{"ok": true}' and attempt.succeeded


def test_a_wrong_secret_does_not_verify(endpoint, receiver):
    from standardwebhooks.webhooks import WebhookVerificationError

    from webhooks.signing import secret_new

    deliveries_send(delivery_ids=[_delivery(endpoint).pk])
    with pytest.raises(WebhookVerificationError):
        verify(receiver.requests[0], secret_new())


def test_500_three_times_then_200_arrives_with_one_webhook_id_after_the_backoff(endpoint, receiver):
    receiver.statuses = [500, 500, 500]
    delivery = _delivery(endpoint)
    now = timezone.now()

    for attempt in range(1, 4):
        (outcome,) = deliveries_send(delivery_ids=[delivery.pk], now=now)
        assert outcome.sent and not outcome.succeeded and outcome.status_code == 500
        delivery.refresh_from_db()
        wait = delivery.next_attempt_at - now
        base = RETRY_BASE * 2 ** (attempt - 1)
        assert base * (1 - RETRY_JITTER) <= wait <= base * (1 + RETRY_JITTER)
        # The backoff holds: a moment before the time, neither the sender nor the sweeper sends it.
        early = delivery.next_attempt_at - timedelta(milliseconds=1)
        assert delivery_attempt(delivery_id=delivery.pk, now=early).sent is False
        assert delivery.pk not in deliveries_due(now=early)
        assert len(receiver.requests) == attempt
        now = delivery.next_attempt_at
        assert delivery.pk in deliveries_due(now=now)

    (outcome,) = deliveries_send(delivery_ids=[delivery.pk], now=now)

    assert outcome.succeeded
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 4)
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 500, 500, 200]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.message_id}
    assert len([r for r in receiver.requests]) == 4 and receiver.statuses == []
    for request in receiver.requests:
        verify(request, endpoint.secret)  # every attempt is signed anew (fresh timestamp)
    assert deliveries_due(now=now + timedelta(days=1)) == []


def test_backoff_grows_exponentially_and_is_capped():
    assert retry_delay(1, jitter=0) == timedelta(seconds=5)
    assert retry_delay(4, jitter=0) == timedelta(seconds=40)
    assert retry_delay(40, jitter=0) == timedelta(hours=6)
    assert retry_delay(2, jitter=RETRY_JITTER) == timedelta(seconds=12)


def test_after_three_days_of_failures_the_delivery_fails(endpoint, receiver):
    receiver.statuses = [503] * 100
    delivery = _delivery(endpoint)
    now = timezone.now()
    while True:
        deliveries_send(delivery_ids=[delivery.pk], now=now)
        delivery.refresh_from_db()
        if delivery.status != "pending":
            break
        assert delivery.next_attempt_at <= delivery.give_up_at
        now = delivery.next_attempt_at
    assert delivery.status == "failed" and delivery.finished_at is not None
    assert delivery.created_at + timedelta(days=2) < now <= delivery.created_at + timedelta(days=3)
    assert 15 <= delivery.attempts == len(receiver.requests) <= 30
    assert deliveries_due(now=now + timedelta(days=10)) == []


def test_an_endpoint_failing_for_five_days_is_disabled_with_the_reason(endpoint, receiver):
    receiver.statuses = [500] * 200
    start = timezone.now()
    for day in range(6):
        now = start + timedelta(days=day, hours=1)
        WebhookDelivery.objects.filter(pk=_delivery(endpoint).pk).update(created_at=now, give_up_at=now + timedelta(days=3))
        deliveries_send(delivery_ids=list(WebhookDelivery.objects.filter(status="pending").values_list("pk", flat=True)), now=now)
        endpoint.refresh_from_db()
        if day < 5:
            assert endpoint.is_active, day
    assert not endpoint.is_active
    assert "every delivery attempt since" in endpoint.disabled_reason and "HTTP 500" in endpoint.disabled_reason
    # Disabled: nothing more is sent to it, and no new delivery is written for it.
    later = start + timedelta(days=6)
    assert deliveries_due(now=later) == []
    assert outbox_add(tenant_id=endpoint.tenant_id, event_type="code.redeemed", data={}, occurred_at=later) == []
    # Activated again by its tenant: the reason is cleared and pending deliveries resume.
    webhook_endpoint_update(endpoint=endpoint, is_active=True)
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.disabled_reason == "" and endpoint.failing_since is None
    assert deliveries_due(now=later) != []


def test_a_success_resets_the_failing_clock(endpoint, receiver):
    receiver.statuses = [500]
    deliveries_send(delivery_ids=[_delivery(endpoint).pk])
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    deliveries_send(delivery_ids=[_delivery(endpoint).pk])
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_a_claimed_delivery_is_not_sent_twice_until_its_lease_runs_out(endpoint, receiver, settings):
    delivery = _delivery(endpoint)
    now = timezone.now()
    # A sender claimed it and then vanished (killed mid-send): the claim is all that is left.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        leased_until=now + timedelta(seconds=settings.COUPONS["WEBHOOKS_LEASE_SECONDS"]), attempts=1, next_attempt_at=now
    )

    assert delivery_attempt(delivery_id=delivery.pk, now=now).sent is False
    assert deliveries_due(now=now) == []
    assert receiver.requests == []

    after = now + timedelta(seconds=settings.COUPONS["WEBHOOKS_LEASE_SECONDS"] + 1)
    assert deliveries_due(now=after) == [delivery.pk]
    (outcome,) = deliveries_send(delivery_ids=[delivery.pk], now=after)
    assert outcome.succeeded
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)


def test_a_fresh_delivery_whose_message_was_lost_is_swept(endpoint, settings):
    delivery = _delivery(endpoint)
    assert deliveries_due(now=delivery.created_at) == []  # its own message is expected to send it
    assert deliveries_due(now=delivery.created_at + timedelta(seconds=settings.COUPONS["WEBHOOKS_STRANDED_SECONDS"])) == [
        delivery.pk
    ]


def test_a_codes_deliveries_wait_for_the_earlier_one(endpoint, receiver):
    receiver.statuses = [500]
    first = _delivery(endpoint, code="A")
    second = _delivery(endpoint, code="B")
    WebhookDelivery.objects.filter(pk__in=[first.pk, second.pk]).update(ordering_key="code:1")
    other_code = _delivery(endpoint, code="C")
    WebhookDelivery.objects.filter(pk=other_code.pk).update(ordering_key="code:2")

    outcomes = deliveries_send(delivery_ids=[first.pk, second.pk, other_code.pk])

    assert [(o.delivery_id, o.sent) for o in outcomes] == [(first.pk, True), (second.pk, False), (other_code.pk, True)]
    first.refresh_from_db()
    assert second.pk not in deliveries_due(now=first.next_attempt_at + timedelta(minutes=1))

    # The first one goes through: the one behind it follows at once, in the same run.
    outcomes = deliveries_send(delivery_ids=[first.pk], now=first.next_attempt_at)
    assert [(o.delivery_id, o.succeeded) for o in outcomes] == [(first.pk, True), (second.pk, True)]
    assert [r.json["data"]["code"] for r in receiver.requests] == ["A", "C", "A", "B"]


def test_a_rolled_back_change_writes_no_delivery(endpoint, tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False)
    CodeFactory(book=book, code="ROLLBACK1")
    with pytest.raises(RuntimeError), transaction.atomic():
        code_reserve(tenant=tenant, code="ROLLBACK1", user_id="alice", actor=actor)
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the caller's transaction fails after the lock")
    assert WebhookDelivery.objects.count() == 0

    held = code_reserve(tenant=tenant, code="ROLLBACK1", user_id="alice", actor=actor)
    code_release(tenant=tenant, code="ROLLBACK1", user_id="alice", actor=actor, token=held.token)
    assert list(WebhookDelivery.objects.order_by("pk").values_list("event_type", flat=True)) == ["code.locked", "code.unlocked"]


def test_only_subscribed_active_endpoints_of_the_tenant_get_an_event(tenant, other_tenant, receiver):
    from webhooks.services import webhook_endpoint_create

    wants = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed"])
    webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.locked"])
    webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed"], is_active=False)
    webhook_endpoint_create(tenant=other_tenant, url=receiver.url, events=["code.redeemed"])

    ids = outbox_add(tenant_id=tenant.pk, event_type="code.redeemed", data={}, occurred_at=timezone.now())

    assert list(WebhookDelivery.objects.filter(pk__in=ids).values_list("endpoint_id", flat=True)) == [wants.pk]


def test_a_rotated_secret_and_the_previous_one_both_sign_for_24_hours(endpoint, receiver):
    old = endpoint.secret
    rotated = webhook_secret_rotate(endpoint=endpoint)
    deliveries_send(delivery_ids=[_delivery(endpoint).pk])
    verify(receiver.requests[-1], old)
    verify(receiver.requests[-1], rotated.secret)
    assert len(receiver.requests[-1].headers["webhook-signature"].split(" ")) == 2

    after_a_day = timezone.now() + timedelta(hours=24, seconds=1)
    deliveries_send(delivery_ids=[_delivery(endpoint).pk], now=after_a_day)
    assert len(receiver.requests[-1].headers["webhook-signature"].split(" ")) == 1
    verify(receiver.requests[-1], rotated.secret)


def test_ping_reaches_an_endpoint_whatever_its_events_and_a_retry_resends_the_same_id(tenant, receiver):
    from webhooks.services import webhook_endpoint_create

    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["job.finished"], is_active=False)
    ping = webhook_ping(endpoint=endpoint)
    deliveries_send(delivery_ids=[ping.pk])
    ping.refresh_from_db()
    assert ping.status == "succeeded" and receiver.requests[0].json["type"] == "ping"

    delivery_retry(delivery=ping)
    deliveries_send(delivery_ids=[ping.pk])
    ping.refresh_from_db()
    assert ping.status == "succeeded" and ping.attempts == 2
    assert [r.headers["webhook-id"] for r in receiver.requests] == [ping.message_id] * 2


def test_an_endpoint_deleted_takes_its_deliveries(endpoint):
    _delivery(endpoint)
    endpoint.delete()
    assert WebhookDelivery.objects.count() == 0 and WebhookEndpoint.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_deleting_an_endpoint_never_fails_a_change_in_flight_and_the_sweeper_removes_its_delivery(endpoint, wakes):
    """The deliveries keep plain parent ids (no foreign-key constraint, which would lock the endpoint's row in every
    lifecycle transaction): a change that wrote a delivery to an endpoint deleted before its commit still commits,
    and the delivery left without its endpoint is never sent and is removed by the sweeper."""
    import threading

    from django.db import connection

    from webhooks.services import webhook_endpoint_delete
    from webhooks.tasks import sweep_deliveries

    written, deleted = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def change() -> None:
        try:
            with transaction.atomic():
                outbox_add(
                    tenant_id=endpoint.tenant_id, event_type="code.redeemed", data={"code": "X1"}, occurred_at=timezone.now()
                )
                written.set()
                assert deleted.wait(30)
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)
        finally:
            written.set()
            connection.close()

    thread = threading.Thread(target=change)
    thread.start()
    assert written.wait(30)
    webhook_endpoint_delete(endpoint=endpoint)
    deleted.set()
    thread.join(30)

    assert errors == []  # with a foreign key, its check at commit failed the change: IntegrityError
    (orphan,) = WebhookDelivery.objects.all()
    assert list(WebhookDelivery.objects.select_related("endpoint")) == []  # the admin's log joins the endpoint
    assert delivery_attempt(delivery_id=orphan.pk).sent is False
    sweep_deliveries()
    assert not WebhookDelivery.objects.exists()
