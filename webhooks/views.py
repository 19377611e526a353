"""The integrator API of webhooks (/api/v1/webhooks/...): an API client manages its tenant's endpoints, reads the
delivery log, retries a delivery and sends a ping. Mounted by api/urls.py."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework.response import Response

from api.pagination import CodeCursorPagination, PagePagination
from api.schema import errors, operation
from api.views.base import ApiView

from .models import WebhookDelivery, WebhookEndpoint
from .selectors import deliveries_of_endpoint, delivery_get, endpoint_get, endpoints_of_tenant
from .serializers import (
    DeliveryOutput,
    DeliveryQuery,
    EndpointCreatedOutput,
    EndpointInput,
    EndpointOutput,
    SecretOutput,
)
from .services import (
    delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_ping,
    webhook_secret_rotate,
)

TAGS = ["webhooks"]


class DeliveryCursorPagination(CodeCursorPagination):
    ordering = "-id"


class EndpointListView(ApiView):
    pagination_class = PagePagination
    serializer_class = EndpointOutput
    queryset = WebhookEndpoint.objects.none()  # for the schema; requests use the selector

    @operation("webhooks_list", "webhooks", responses={200: EndpointOutput(many=True)})
    def get(self, request):
        """List webhook endpoints"""
        page = self.paginate_queryset(endpoints_of_tenant(tenant=self.tenant))
        return self.get_paginated_response(EndpointOutput(page, many=True).data)

    @operation("webhook_create", "webhooks", request=EndpointInput, responses={201: EndpointCreatedOutput}, once=True)
    def post(self, request):
        """Register a webhook endpoint

        The answer holds the signing `secret`, shown only this once.
        """
        data = self.parse(EndpointInput, request.data)
        endpoint = webhook_endpoint_create(tenant=self.tenant, **data)
        return Response(EndpointCreatedOutput(endpoint).data, status=201)


class EndpointDetailView(ApiView):
    error_codes = errors("webhook_not_found")

    @operation("webhook_get", "webhooks", responses={200: EndpointOutput})
    def get(self, request, webhook_id):
        """A webhook endpoint"""
        return Response(EndpointOutput(endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)).data)

    @operation("webhook_update", "webhooks", request=EndpointInput(partial=True), responses={200: EndpointOutput})
    def patch(self, request, webhook_id):
        """Change a webhook endpoint

        `is_active`, `events`, `url`, `description`. Activating a disabled endpoint resumes its pending deliveries.
        """
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        serializer = EndpointInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(EndpointOutput(webhook_endpoint_update(endpoint=endpoint, **serializer.validated_data)).data)

    @operation("webhook_delete", "webhooks", responses={204: OpenApiResponse(description="Deleted.")})
    def delete(self, request, webhook_id):
        """Delete a webhook endpoint

        With its delivery log.
        """
        webhook_endpoint_delete(endpoint=endpoint_get(tenant=self.tenant, endpoint_id=webhook_id))
        return Response(status=204)


class DeliveryListView(ApiView):
    pagination_class = DeliveryCursorPagination
    serializer_class = DeliveryOutput
    queryset = WebhookDelivery.objects.none()
    error_codes = errors("webhook_not_found")

    @operation("webhook_deliveries_list", "webhooks", parameters=[DeliveryQuery], responses={200: DeliveryOutput(many=True)})
    def get(self, request, webhook_id):
        """The delivery log of an endpoint

        Newest first, each delivery with its attempts (time, HTTP status, duration, the answer's first 1 KB).
        """
        query = self.parse(DeliveryQuery, request.query_params)
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        deliveries = deliveries_of_endpoint(endpoint=endpoint, status=query.get("status"), event_type=query.get("event"))
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(DeliveryOutput(page, many=True).data)


class DeliveryRetryView(ApiView):
    error_codes = errors("webhook_not_found", "webhook_delivery_not_found")

    @operation("webhook_delivery_retry", "webhooks", request=None, responses={202: DeliveryOutput}, once=True)
    def post(self, request, webhook_id, delivery_id):
        """Send a delivery again

        Queued at once, with the same webhook-id. A delivery older than the three-day retry window gets one attempt.
        """
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        delivery = delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        return Response(DeliveryOutput(delivery_retry(delivery=delivery)).data, status=202)


class EndpointPingView(ApiView):
    error_codes = errors("webhook_not_found")

    @operation("webhook_ping", "webhooks", request=None, responses={202: DeliveryOutput}, once=True)
    def post(self, request, webhook_id):
        """Send a ping event to the endpoint"""
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        return Response(DeliveryOutput(webhook_ping(endpoint=endpoint)).data, status=202)


class EndpointSecretRotateView(ApiView):
    error_codes = errors("webhook_not_found")

    @operation("webhook_secret_rotate", "webhooks", request=None, responses={200: SecretOutput}, once=True)
    def post(self, request, webhook_id):
        """Rotate the signing secret

        A new secret signs from now on; the previous one adds a second signature for 24 hours, so receivers can switch
        without losing a delivery.
        """
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        rotated = webhook_secret_rotate(endpoint=endpoint)
        body = {"secret": rotated.secret, "previous_secret_expires_at": rotated.previous_secret_expires_at}
        return Response(SecretOutput(body).data)
