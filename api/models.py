"""Models of the integrator API: stored Idempotency-Key answers and the end-user token keys of a tenant."""

from django.db import models


class IdempotencyKey(models.Model):
    """The first answer to a POST sent with an Idempotency-Key, replayed to a retry with the same key.

    The row is inserted first inside the transaction of the change it guards, so it commits (or rolls back)
    together with that change, and a concurrent retry with the same key waits on the unique index until the
    first request has finished.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    # Who sent it: "client:<client_id>" or "end_user:<kid>:<sub>"; keys of two callers never meet.
    principal = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    # sha256 of method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "principal", "key"], name="idempotency_key_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.key} ({self.method} {self.path})"


class EndUserSigningKey(models.Model):
    """The key of a tenant's own login service: tokens it signs let one end user act on their own codes.

    The token names this key in its `kid` header; the tenant is taken from the key, never from the token.
    """

    class Algorithm(models.TextChoices):
        HS256 = "HS256", "HS256 (shared secret)"
        RS256 = "RS256", "RS256 (RSA public key, PEM)"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="end_user_keys")
    kid = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    algorithm = models.CharField(max_length=8, choices=Algorithm.choices)
    # The HS256 secret or the RS256 public key (PEM). Only public material for RS256.
    key = models.TextField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="enduserkey_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kid}, {self.algorithm})"
