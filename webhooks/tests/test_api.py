"""The webhooks API (/api/v1/webhooks/...): an integrator manages its endpoints, reads the delivery log with its
filters, retries a delivery and sends a ping; another tenant's ids answer 404; bad input answers 400."""

import pytest
from django.utils import timezone

from api.services import api_tokens_issue
from api.tests.conftest import assert_error, bearer
from tenants.services import api_client_create
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import deliveries_send, outbox_add, webhook_endpoint_create

pytestmark = pytest.mark.django_db


def _client_of(tenant):
    issued = api_client_create(tenant=tenant, name="Integrator")
    return bearer(api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)["access"])


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api(tenant):
    return _client_of(tenant)


@pytest.fixture
def other_api(other_tenant):
    return _client_of(other_tenant)


def test_register_shows_the_secret_once_then_list_get_patch_delete(api, tenant, receiver):
    created = api.post("/api/v1/webhooks/", {"url": receiver.url, "events": ["code.redeemed", "code.locked"]}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["code.locked", "code.redeemed"]
    assert body["is_active"] is True
    endpoint_id = body["id"]
    assert WebhookEndpoint.objects.get(pk=endpoint_id).tenant == tenant

    listed = api.get("/api/v1/webhooks/").json()
    assert [e["id"] for e in listed["results"]] == [endpoint_id] and "secret" not in listed["results"][0]
    assert "secret" not in api.get(f"/api/v1/webhooks/{endpoint_id}/").json()

    patched = api.patch(f"/api/v1/webhooks/{endpoint_id}/", {"is_active": False, "events": ["job.finished"]}, format="json")
    assert patched.status_code == 200 and patched.json()["is_active"] is False and patched.json()["events"] == ["job.finished"]

    assert api.delete(f"/api/v1/webhooks/{endpoint_id}/").status_code == 204
    assert_error(api.get(f"/api/v1/webhooks/{endpoint_id}/"), 404, "webhook_not_found")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://example.com/x", "events": ["code.redeemed"]}, "url"),
        ({"url": "https://example.com/x", "events": []}, "events"),
        ({"url": "https://example.com/x", "events": ["code.exploded"]}, "events"),
        ({"url": "https://example.com/x", "events": "code.redeemed"}, "events"),
        ({"url": 5, "events": ["code.redeemed"]}, "url"),
        ({"events": ["code.redeemed"]}, "url"),
    ],
)
def test_bad_registrations_answer_400(api, body, field):
    error = assert_error(api.post("/api/v1/webhooks/", body, format="json"), 400, "invalid_input")
    assert field in str(error["details"])
    assert WebhookEndpoint.objects.count() == 0


def test_plain_http_and_private_addresses_are_refused_unless_allowed(api, settings):
    settings.COUPONS = {**settings.COUPONS, "WEBHOOKS_ALLOW_INSECURE": False}
    for url in (
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/x",
        "https://localhost/x",
        "https://[::1]/x",
    ):
        error = assert_error(api.post("/api/v1/webhooks/", {"url": url, "events": ["code.redeemed"]}, format="json"), 400)
        assert error["details"]["field"] == "url", url
    assert (
        api.post(
            "/api/v1/webhooks/", {"url": "https://hooks.example.com/x", "events": ["code.redeemed"]}, format="json"
        ).status_code
        == 201
    )


def test_the_delivery_log_filters_by_status_and_event_and_shows_attempts(api, tenant, receiver):
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed", "code.locked"])
    receiver.statuses = [500]
    now = timezone.now()
    failed_once = WebhookDelivery.objects.get(
        pk=outbox_add(tenant_id=tenant.pk, event_type="code.redeemed", data={"n": 1}, occurred_at=now)[0]
    )
    locked = WebhookDelivery.objects.get(
        pk=outbox_add(tenant_id=tenant.pk, event_type="code.locked", data={"n": 2}, occurred_at=now)[0]
    )
    deliveries_send(delivery_ids=[failed_once.pk, locked.pk])

    everything = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/").json()["results"]
    assert [d["id"] for d in everything] == [locked.pk, failed_once.pk]
    pending = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/", {"status": "pending"}).json()["results"]
    assert [d["id"] for d in pending] == [failed_once.pk]
    assert pending[0]["attempt_log"][0]["status_code"] == 500 and pending[0]["attempts"] == 1
    assert pending[0]["webhook_id"] == failed_once.message_id and pending[0]["next_attempt_at"]
    by_event = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/", {"event": "code.locked"}).json()["results"]
    assert [d["id"] for d in by_event] == [locked.pk] and by_event[0]["status"] == "succeeded"
    assert_error(api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/", {"status": "lost"}), 400, "invalid_input")


def test_retry_and_ping_answer_202_and_queue_the_send(api, tenant, receiver, wakes):
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed"])
    delivery = WebhookDelivery.objects.get(
        pk=outbox_add(tenant_id=tenant.pk, event_type="code.redeemed", data={}, occurred_at=timezone.now())[0]
    )
    deliveries_send(delivery_ids=[delivery.pk])

    retried = api.post(f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    pinged = api.post(f"/api/v1/webhooks/{endpoint.pk}/test/")
    assert pinged.status_code == 202 and pinged.json()["event"] == "ping"

    deliveries_send(delivery_ids=[delivery.pk, pinged.json()["id"]])
    assert [r.json["type"] for r in receiver.requests] == ["code.redeemed", "code.redeemed", "ping"]
    assert WebhookDelivery.objects.get(pk=delivery.pk).attempts == 2


def test_rotating_the_secret_answers_the_new_one(api, tenant, receiver):
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed"])
    rotated = api.post(f"/api/v1/webhooks/{endpoint.pk}/rotate-secret/")
    assert rotated.status_code == 200
    endpoint.refresh_from_db()
    assert rotated.json()["secret"] == endpoint.secret != endpoint.previous_secret


def test_another_tenants_endpoint_and_delivery_answer_404(api, other_api, tenant, receiver):
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed"])
    delivery = WebhookDelivery.objects.get(
        pk=outbox_add(tenant_id=tenant.pk, event_type="code.redeemed", data={}, occurred_at=timezone.now())[0]
    )
    base = f"/api/v1/webhooks/{endpoint.pk}/"

    assert other_api.get("/api/v1/webhooks/").json()["results"] == []
    for response in (
        other_api.get(base),
        other_api.patch(base, {"is_active": False}, format="json"),
        other_api.delete(base),
        other_api.get(base + "deliveries/"),
        other_api.post(base + f"deliveries/{delivery.pk}/retry/"),
        other_api.post(base + "test/"),
        other_api.post(base + "rotate-secret/"),
    ):
        assert_error(response, 404, "webhook_not_found")
    # The tenant's own endpoint with a delivery of another endpoint: 404 too.
    mine = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["job.finished"])
    assert_error(api.post(f"/api/v1/webhooks/{mine.pk}/deliveries/{delivery.pk}/retry/"), 404, "webhook_delivery_not_found")
    endpoint.refresh_from_db()
    assert endpoint.is_active and WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_an_end_user_token_cannot_manage_webhooks(tenant):
    from api.services import end_user_key_register
    from api.tests.conftest import HS_SECRET, end_user_token

    key = end_user_key_register(tenant=tenant, name="Shop login", algorithm="HS256", key=HS_SECRET)
    end_user = bearer(end_user_token(key, "alice"))
    assert_error(end_user.get("/api/v1/webhooks/"), 403, "permission_denied")
