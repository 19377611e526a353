"""Back office of webhooks: tenant admins only; endpoints created through the service (secret shown once); the
delivery log with filters, retry and ping actions; another tenant's ids answer 404; a disabled endpoint's reason
is shown to the admins."""

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants.models import Role
from tests.helpers import logged_in
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import deliveries_send, outbox_add, webhook_endpoint_create

pytestmark = pytest.mark.django_db

ENDPOINTS = reverse("admin:webhooks_webhookendpoint_changelist")
DELIVERIES = reverse("admin:webhooks_webhookdelivery_changelist")


@pytest.mark.parametrize("role", [Role.MARKETING, Role.ACCOUNTANT])
def test_marketing_and_accountants_cannot_see_webhooks(client, tenant, receiver, role):
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed"])
    logged_in(client, tenant, role)
    assert client.get(ENDPOINTS).status_code == 403
    assert client.get(DELIVERIES).status_code == 403
    assert client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])).status_code == 403
    assert "Webhook" not in client.get(reverse("admin:index")).content.decode()


def test_an_admin_registers_an_endpoint_and_sees_the_secret_once(client, tenant, receiver):
    logged_in(client, tenant, Role.ADMIN)
    response = client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"url": receiver.url, "events": ["code.redeemed", "code.voided"], "description": "ERP", "is_active": "on"},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.tenant == tenant and endpoint.events == ["code.redeemed", "code.voided"]
    assert endpoint.secret in response.content.decode()
    page = client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in page


def test_a_bad_url_is_a_form_error(client, tenant, settings):
    settings.COUPONS = {**settings.COUPONS, "WEBHOOKS_ALLOW_INSECURE": False}
    logged_in(client, tenant, Role.ADMIN)
    response = client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"url": "http://10.0.0.1/x", "events": ["code.redeemed"], "is_active": "on"},
    )
    assert response.status_code == 200 and "Only https URLs are allowed" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_the_delivery_log_filters_retries_and_pings(client, tenant, other_tenant, receiver):
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed", "code.locked"])
    foreign = webhook_endpoint_create(tenant=other_tenant, url=receiver.url, events=["code.redeemed"])
    now = timezone.now()
    redeemed = WebhookDelivery.objects.get(
        pk=outbox_add(tenant_id=tenant.pk, event_type="code.redeemed", data={}, occurred_at=now)[0]
    )
    locked = WebhookDelivery.objects.get(
        pk=outbox_add(tenant_id=tenant.pk, event_type="code.locked", data={}, occurred_at=now)[0]
    )
    theirs = WebhookDelivery.objects.get(
        pk=outbox_add(tenant_id=other_tenant.pk, event_type="code.redeemed", data={}, occurred_at=now)[0]
    )
    receiver.statuses = [500]
    deliveries_send(delivery_ids=[redeemed.pk])
    logged_in(client, tenant, Role.ADMIN)

    assert client.get(DELIVERIES).status_code == 200
    rows = client.get(DELIVERIES, {"event_type__exact": "code.locked"}).context["cl"].result_list
    assert [d.pk for d in rows] == [locked.pk]
    rows = client.get(DELIVERIES, {"status__exact": "pending"}).context["cl"].result_list
    assert {d.pk for d in rows} == {redeemed.pk, locked.pk}
    detail = client.get(reverse("admin:webhooks_webhookdelivery_change", args=[redeemed.pk])).content.decode()
    assert "500" in detail and redeemed.message_id in detail
    assert client.get(reverse("admin:webhooks_webhookdelivery_change", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:webhooks_webhookendpoint_change", args=[foreign.pk])).status_code == 404

    client.post(DELIVERIES, {"action": "retry_deliveries", "_selected_action": [redeemed.pk]})
    redeemed.refresh_from_db()
    assert redeemed.next_attempt_at <= timezone.now()
    client.post(ENDPOINTS, {"action": "send_ping", "_selected_action": [endpoint.pk, foreign.pk]})
    assert list(WebhookDelivery.objects.filter(event_type="ping").values_list("endpoint_id", flat=True)) == [endpoint.pk]


def test_a_disabled_endpoint_shows_its_reason_to_the_admins(client, tenant, receiver):
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url, events=["code.redeemed"])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False, disabled_reason="Disabled on 2026-01-01: every attempt failed."
    )
    logged_in(client, tenant, Role.ADMIN)
    assert "every attempt failed" in client.get(ENDPOINTS).content.decode()
