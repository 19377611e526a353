"""The redemption log: append-only rows; a reversal (refund) is recorded on the row, which stays."""

from django.db import models
from django.db.models import Q

from core.actors import ACTOR_KIND_CHOICES

# A redemption's outcome as the API (RedemptionOutput) and the export's workbook both show it, in this order: the
# discount, who redeemed, and the reversal.
OUTCOME_FIELDS = ("discount", "currency", "actor_type", "actor_id", "reversed", "reversed_at", "reversal_reason")


class Redemption(models.Model):
    # No index of their own for tenant and book: the composite indexes below lead with them and serve their
    # look-ups and cascades. Each index is written by every redeem, and a single-column book index tied with
    # redemption_user_idx for the per-user count, where choosing it scans the book's redemptions (README
    # "Performance").
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="redemptions", db_index=False)
    book = models.ForeignKey("books.CouponBook", on_delete=models.PROTECT, related_name="redemptions", db_index=False)
    code = models.ForeignKey("books.Code", on_delete=models.PROTECT, related_name="redemptions")
    reservation = models.OneToOneField(
        "books.Reservation", null=True, blank=True, on_delete=models.SET_NULL, related_name="redemption"
    )
    user_id = models.CharField(max_length=255)
    redeemed_at = models.DateTimeField(db_index=True)
    order_ref = models.CharField(max_length=255, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    product_id = models.CharField(max_length=255, blank=True)
    discount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    actor_type = models.CharField(max_length=16, choices=ACTOR_KIND_CHOICES)
    actor_id = models.CharField(max_length=150, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversal_reason = models.TextField(blank=True)
    reversed_by_type = models.CharField(max_length=16, choices=ACTOR_KIND_CHOICES, blank=True)
    reversed_by_id = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-redeemed_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-redeemed_at"], name="redemption_tenant_time_idx"),
            models.Index(fields=["book", "-redeemed_at"], name="redemption_book_time_idx"),
            # The per-user redemption limit counts a user's standing redemptions in a book.
            models.Index(fields=["book", "user_id"], condition=Q(reversed_at__isnull=True), name="redemption_user_idx"),
            models.Index(fields=["tenant", "user_id"], name="redemption_tenant_user_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__isnull=True) | Q(amount__gte=0), name="redemption_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(discount__isnull=True) | Q(discount__gte=0), name="redemption_discount_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(reversed_at__isnull=True) | ~Q(reversed_by_type=""), name="redemption_reversal_has_author"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code_id} by {self.user_id} at {self.redeemed_at:%Y-%m-%d %H:%M}"

    @property
    def is_reversed(self) -> bool:
        return self.reversed_at is not None
