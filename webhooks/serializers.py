"""API shapes of webhook endpoints and deliveries. Inputs parse, type-check and apply webhooks.inputs; the services
apply the rules of the stored state."""

from rest_framework import serializers

from api.serializers import StrictCharField

from .inputs import DESCRIPTION_MAX, URL_MAX, clean_events, clean_url
from .models import EVENT_TYPE_CHOICES, EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointInput(serializers.Serializer):
    url = StrictCharField(
        max_length=URL_MAX,
        help_text="An https URL (plain http and private addresses only where the service allows them, for local use).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)), min_length=1, max_length=len(EVENT_TYPES)
    )
    description = StrictCharField(max_length=DESCRIPTION_MAX, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)

    # The rules DRF's fields do not know, from webhooks.inputs (the admin's endpoint form calls the same ones).
    def validate_url(self, value: str) -> str:
        return clean_url(value)

    def validate_events(self, value: list[str]) -> list[str]:
        return clean_events(value)


class EndpointOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "description", "is_active", "disabled_at", "disabled_reason", "created_at", "updated_at"]


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(help_text="The signing secret (whsec_...). Shown only in this answer: store it now.")

    class Meta(EndpointOutput.Meta):
        fields = [*EndpointOutput.Meta.fields, "secret"]


class SecretOutput(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret; the previous one also signs for 24 hours.")
    previous_secret_expires_at = serializers.DateTimeField()


class AttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["attempted_at", "status_code", "duration_ms", "response_body", "error", "succeeded"]


class DeliveryOutput(serializers.ModelSerializer):
    webhook_id = serializers.CharField(source="message_id", help_text="The webhook-id header: stable across retries.")
    event = serializers.CharField(source="event_type")
    attempt_log = AttemptOutput(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook_id",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "finished_at",
            "body",
            "attempt_log",
        ]


class DeliveryQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)
    event = serializers.ChoiceField(choices=EVENT_TYPE_CHOICES, required=False)
