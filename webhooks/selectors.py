"""Reads of webhook endpoints and deliveries, always inside one tenant (another tenant's id is not found)."""

from django.db.models import Prefetch, QuerySet

from core.exceptions import ApplicationError
from tenants.models import Tenant

from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def endpoints_of_tenant(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(tenant=tenant).order_by("-created_at", "-id")


def endpoint_get(*, tenant: Tenant, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(tenant=tenant, pk=endpoint_id).first()
    if endpoint is None:
        raise ApplicationError("webhook_not_found", "No such webhook endpoint.", {"webhook": str(endpoint_id)[:64]})
    return endpoint


def deliveries_of_endpoint(
    *, endpoint: WebhookEndpoint, status: str | None = None, event_type: str | None = None
) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint).prefetch_related(
        Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("id"))
    )
    if status:
        deliveries = deliveries.filter(status=status)
    if event_type:
        deliveries = deliveries.filter(event_type=event_type)
    return deliveries


def delivery_get(*, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint, pk=delivery_id).first()
    if delivery is None:
        raise ApplicationError(
            "webhook_delivery_not_found", "No such delivery of this endpoint.", {"delivery": str(delivery_id)[:64]}
        )
    return delivery
