"""Webhook endpoints of a tenant, and the outbox of deliveries to them with every attempt made.

A delivery row is written in the same transaction as the change it reports (webhooks.services.outbox_add), so
the two commit together or not at all; the row is the truth, a Celery message only a wake-up call.
"""

from django.db import models
from django.db.models import Q

# The event types a tenant can subscribe to (SPEC "Webhooks"). `ping` is sent on request to one endpoint only.
EVENT_TYPES = (
    "code.assigned",
    "code.locked",
    "code.unlocked",
    "code.lock_expired",
    "code.redeemed",
    "redemption.reversed",
    "code.voided",
    "book.updated",
    "job.finished",
)
PING = "ping"
EVENT_TYPE_CHOICES = [(name, name) for name in (*EVENT_TYPES, PING)]


class WebhookEndpoint(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    events = models.JSONField(default=list, help_text="The event types sent to this endpoint.")
    is_active = models.BooleanField(default=True)
    # Standard Webhooks secrets ("whsec_" + base64 of 32 random bytes). Kept in clear: the service must sign with
    # them. After a rotation the previous secret signs too (a second signature) until previous_secret_expires_at.
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Since when every attempt has failed (null after any success); five days of that disables the endpoint.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook endpoint"
        # The outbox reads the tenant's active endpoints in every lifecycle transaction.
        indexes = [models.Index(fields=["tenant"], condition=Q(is_active=True), name="webhook_endpoint_active_idx")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: sent until a 2xx answer, retried with backoff for three days, then failed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    # Plain ids in the database, no foreign-key constraint and no index of their own: every lifecycle transaction
    # writes these rows, and a constraint would check both parents at its commit, locking the endpoint's row FOR KEY
    # SHARE (a multixact and a WAL record whenever two redemptions overlap), while the composite indexes below
    # already serve every lookup by them. Django's CASCADE still deletes an endpoint's or a tenant's deliveries
    # with it; a delivery written by a transaction that raced the endpoint's deletion is skipped by every query
    # (they join the endpoint) and removed by the sweeper (services.deliveries_orphaned_delete).
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False, db_index=False
    )
    # The webhook-id header: one per event (shared by the endpoints it goes to), stable across retries.
    message_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=32, choices=EVENT_TYPE_CHOICES)
    # The exact JSON body that is signed and sent, kept as text: re-serialising could change its bytes.
    body = models.TextField()
    # Deliveries of one endpoint with the same key go out in order of occurrence ("code:17"); "" = unordered.
    ordering_key = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the sweeper should send it next: a fresh delivery is sent at once by its Celery message, and is
    # picked up by the sweeper only if that message was lost; a failed attempt sets the backoff's time.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A sender holds the delivery until then; a worker lost mid-send leaves a lease that simply runs out.
    leased_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    give_up_at = models.DateTimeField(help_text="No retry is scheduled past this time; the delivery fails instead.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        permissions = [("retry_webhookdelivery", "Can retry webhook deliveries and send pings")]
        indexes = [
            # The order check (an earlier pending delivery of the same endpoint and key holds the later ones back),
            # and the sweeper's scan of pending deliveries. Pending rows are few (a delivery is pending for
            # milliseconds unless its endpoint fails), so no index of their due times is kept: one less index to
            # write in every lifecycle transaction.
            models.Index(fields=["endpoint", "ordering_key", "id"], condition=Q(status="pending"), name="delivery_queue_idx"),
            # The delivery log of an endpoint (API and admin), newest first, by status or type: read backwards.
            # Ascending on purpose: every new delivery has the highest id, so it lands at the right end, where
            # PostgreSQL inserts without descending the tree and splits a full page 90/10. In a descending index
            # it lands at the left end, where each split is 50/50: the indexes were 2.4 times the size of the
            # primary key's, with as many more page splits written to the WAL (README "Webhooks").
            models.Index(fields=["endpoint", "id"], name="delivery_endpoint_idx"),
            models.Index(fields=["tenant", "id"], name="delivery_tenant_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery: when, the answer's status, how long it took and its first kilobyte."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_body = models.TextField(blank=True, help_text="The first 1 KB of the answer.")
    error = models.CharField(max_length=500, blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["delivery", "id"], name="attempt_delivery_idx")]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"
