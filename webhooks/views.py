"""The integrator API of webhooks (/api/v1/webhooks/...): an API client manages its tenant's endpoints, reads the
delivery log, retries a delivery and sends a ping. Mounted by api/urls.py."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from api.idempotency import idempotent
from api.pagination import CodeCursorPagination, PagePagination
from api.schema import errors
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
    idempotent = True
    pagination_class = PagePagination
    serializer_class = EndpointOutput
    queryset = WebhookEndpoint.objects.none()  # for the schema; requests use the selector

    @extend_schema(
        operation_id="webhooks_list", tags=TAGS, summary="List webhook endpoints", responses={200: EndpointOutput(many=True)}
    )
    def get(self, request):
        page = self.paginate_queryset(endpoints_of_tenant(tenant=self.tenant))
        return self.get_paginated_response(EndpointOutput(page, many=True).data)

    @extend_schema(
        operation_id="webhook_create",
        tags=TAGS,
        summary="Register a webhook endpoint",
        description="The answer holds the signing `secret`, shown only this once.",
        request=EndpointInput,
        responses={201: EndpointCreatedOutput},
    )
    def post(self, request):
        data = self.parse(EndpointInput, request.data)

        def run(key):
            endpoint = webhook_endpoint_create(tenant=self.tenant, **data)
            return Response(EndpointCreatedOutput(endpoint).data, status=201)

        return idempotent(request, run)


class EndpointDetailView(ApiView):
    error_codes = errors("webhook_not_found")

    @extend_schema(operation_id="webhook_get", tags=TAGS, summary="A webhook endpoint", responses={200: EndpointOutput})
    def get(self, request, webhook_id):
        return Response(EndpointOutput(endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)).data)

    @extend_schema(
        operation_id="webhook_update",
        tags=TAGS,
        summary="Change a webhook endpoint",
        description="`is_active`, `events`, `url`, `description`. Activating a disabled endpoint resumes its pending deliveries.",
        request=EndpointInput(partial=True),
        responses={200: EndpointOutput},
    )
    def patch(self, request, webhook_id):
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        serializer = EndpointInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(EndpointOutput(webhook_endpoint_update(endpoint=endpoint, **serializer.validated_data)).data)

    @extend_schema(
        operation_id="webhook_delete",
        tags=TAGS,
        summary="Delete a webhook endpoint",
        description="With its delivery log.",
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request, webhook_id):
        webhook_endpoint_delete(endpoint=endpoint_get(tenant=self.tenant, endpoint_id=webhook_id))
        return Response(status=204)


class DeliveryListView(ApiView):
    pagination_class = DeliveryCursorPagination
    serializer_class = DeliveryOutput
    queryset = WebhookDelivery.objects.none()
    error_codes = errors("webhook_not_found")

    @extend_schema(
        operation_id="webhook_deliveries_list",
        tags=TAGS,
        summary="The delivery log of an endpoint",
        description="Newest first, each delivery with its attempts (time, HTTP status, duration, the answer's first 1 KB).",
        parameters=[DeliveryQuery],
        responses={200: DeliveryOutput(many=True)},
    )
    def get(self, request, webhook_id):
        query = self.parse(DeliveryQuery, request.query_params)
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        deliveries = deliveries_of_endpoint(endpoint=endpoint, status=query.get("status"), event_type=query.get("event"))
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(DeliveryOutput(page, many=True).data)


class DeliveryRetryView(ApiView):
    idempotent = True
    error_codes = errors("webhook_not_found", "webhook_delivery_not_found")

    @extend_schema(
        operation_id="webhook_delivery_retry",
        tags=TAGS,
        summary="Send a delivery again",
        description="Queued at once, with the same webhook-id. A delivery older than the three-day retry window gets one attempt.",
        request=None,
        responses={202: DeliveryOutput},
    )
    def post(self, request, webhook_id, delivery_id):
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        delivery = delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        return idempotent(request, lambda key: Response(DeliveryOutput(delivery_retry(delivery=delivery)).data, status=202))


class EndpointPingView(ApiView):
    idempotent = True
    error_codes = errors("webhook_not_found")

    @extend_schema(
        operation_id="webhook_ping",
        tags=TAGS,
        summary="Send a ping event to the endpoint",
        request=None,
        responses={202: DeliveryOutput},
    )
    def post(self, request, webhook_id):
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        return idempotent(request, lambda key: Response(DeliveryOutput(webhook_ping(endpoint=endpoint)).data, status=202))


class EndpointSecretRotateView(ApiView):
    idempotent = True
    error_codes = errors("webhook_not_found")

    @extend_schema(
        operation_id="webhook_secret_rotate",
        tags=TAGS,
        summary="Rotate the signing secret",
        description="A new secret signs from now on; the previous one adds a second signature for 24 hours, so "
        "receivers can switch without losing a delivery.",
        request=None,
        responses={200: SecretOutput},
    )
    def post(self, request, webhook_id):
        endpoint = endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)

        def run(key):
            rotated = webhook_secret_rotate(endpoint=endpoint)
            body = {"secret": rotated.secret, "previous_secret_expires_at": rotated.previous_secret_expires_at}
            return Response(SecretOutput(body).data)

        return idempotent(request, run)
