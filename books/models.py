"""Coupon books, their codes, reservations (locks) of a code's use, and the event history of every code."""

import secrets
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from core.actors import ACTOR_KIND_CHOICES

CENT = Decimal("0.01")  # the smallest amount a budget or a discount cap can be
CODE_REGEX = r"^[A-Z0-9_-]{3,64}$"  # the one code format: the model's validator, its CHECK, and inputs.is_valid_code


def shuffle_keys(count: int) -> list[int]:
    """Random keys for Code.shuffle from a cryptographic source (random assignment walks free codes in this order).

    63 bits: the key is a signed bigint, and keys stay non-negative.
    """
    raw = secrets.token_bytes(8 * count)
    return [int.from_bytes(raw[i : i + 8], "big") >> 1 for i in range(0, 8 * count, 8)]


def _optional_amount_field(*, minimum: Decimal | int, help_text: str) -> models.DecimalField:
    """A book's campaign limit in money: to the cent like every amount of the book, null when there is none."""
    return models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(minimum)],
        help_text=help_text,
    )


class CouponBook(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="books")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)

    class DiscountType(models.TextChoices):
        PERCENT = "percent", "Percent"
        FIXED = "fixed", "Fixed amount"

    discount_type = models.CharField(max_length=16, choices=DiscountType.choices, default=DiscountType.PERCENT)
    discount_value = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("10.00"))
    currency = models.CharField(max_length=3, blank=True, help_text="ISO 4217 code; required for a fixed discount.")
    product_ids = models.JSONField(default=list, blank=True, help_text="Eligible product ids; empty means every product.")
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    max_codes_per_user = models.PositiveIntegerField(null=True, blank=True, default=1, validators=[MinValueValidator(1)])
    max_redemptions_per_user = models.PositiveIntegerField(null=True, blank=True, default=1, validators=[MinValueValidator(1)])
    uses_per_code = models.PositiveIntegerField(null=True, blank=True, default=1, validators=[MinValueValidator(1)])
    requires_assignment = models.BooleanField(default=True)
    lock_ttl_seconds = models.PositiveIntegerField(default=300, validators=[MinValueValidator(10), MaxValueValidator(3600)])
    # Campaign limits (null = none). The two book-wide ones, max_redemptions and budget_amount, are counted on the
    # book's BookAllowance shards (books/services/book_limits.py); the other two apply to each order alone.
    max_redemptions = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Standing redemptions of the whole book."
    )
    budget_amount = _optional_amount_field(minimum=CENT, help_text="Total standing discount, in the book's currency.")
    min_order_amount = _optional_amount_field(minimum=0, help_text="An order below this amount gets no discount.")
    max_discount_amount = _optional_amount_field(minimum=CENT, help_text="Caps a percent discount per order.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "status"], name="book_tenant_status_idx"),
            models.Index(fields=["tenant", "-created_at"], name="book_tenant_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(discount_value__gte=0), name="book_discount_non_negative"),
            models.CheckConstraint(
                condition=~Q(discount_type="percent") | Q(discount_value__lte=100), name="book_percent_at_most_100"
            ),
            models.CheckConstraint(condition=~Q(discount_type="fixed") | ~Q(currency=""), name="book_fixed_has_currency"),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="book_validity_ordered",
            ),
            models.CheckConstraint(condition=Q(uses_per_code__isnull=True) | Q(uses_per_code__gte=1), name="book_uses_positive"),
            models.CheckConstraint(
                condition=Q(max_codes_per_user__isnull=True) | Q(max_codes_per_user__gte=1), name="book_max_codes_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_redemptions_per_user__isnull=True) | Q(max_redemptions_per_user__gte=1),
                name="book_max_redemptions_positive",
            ),
            models.CheckConstraint(
                condition=Q(lock_ttl_seconds__gte=10) & Q(lock_ttl_seconds__lte=3600), name="book_lock_ttl_bounded"
            ),
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True) | Q(max_redemptions__gte=1), name="book_max_redemptions_total_positive"
            ),
            models.CheckConstraint(condition=Q(budget_amount__isnull=True) | Q(budget_amount__gt=0), name="book_budget_positive"),
            models.CheckConstraint(condition=Q(budget_amount__isnull=True) | ~Q(currency=""), name="book_budget_has_currency"),
            models.CheckConstraint(
                condition=Q(min_order_amount__isnull=True) | Q(min_order_amount__gte=0), name="book_min_order_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(max_discount_amount__isnull=True) | (Q(max_discount_amount__gt=0) & Q(discount_type="percent")),
                name="book_max_discount_caps_percent",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_book_limits(self) -> bool:
        """A book-wide limit applies: its uses are counted on its BookAllowance shards (see Code.book_limited)."""
        return self.max_redemptions is not None or self.budget_amount is not None


class Code(models.Model):
    class State(models.TextChoices):
        FREE = "free", "Free"  # never assigned, uses left
        ASSIGNED = "assigned", "Assigned"  # held by a user, uses left
        REDEEMED = "redeemed", "Redeemed"  # every use consumed
        VOIDED = "voided", "Voided"  # withdrawn by staff; never usable again

    # No index of their own: code_unique_per_tenant (tenant, code) and code_book_state_idx (book, state) lead with
    # them. An assign and a code's last use change its state, which PostgreSQL writes into every index of the row.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="codes", db_index=False)
    book = models.ForeignKey(CouponBook, on_delete=models.CASCADE, related_name="codes", db_index=False)
    code = models.CharField(max_length=64, validators=[RegexValidator(CODE_REGEX)])
    state = models.CharField(max_length=16, choices=State.choices, default=State.FREE)
    # NULL, not "", means unassigned: the partial index of users' codes and the assigned-has-user check rely on it.
    user_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    assigned_at = models.DateTimeField(null=True, blank=True)
    # Copied from the book so the database itself can refuse a redemption above the code's uses (a CHECK can
    # only see its own row). book_update keeps it in step; null means unlimited.
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    # Copied from the book (CouponBook.has_book_limits), for the same reason as max_uses: the services read it from
    # the code row they hold locked. book_update rewrites it on every code when the book's limits are switched on,
    # and that UPDATE waits for every lock or redeem under way on the book's codes; one that queued behind it
    # reads the new value from the row it then locks, so no use can slip past a counter that was just started.
    book_limited = models.BooleanField(default=False, db_default=False)
    redeemed_count = models.PositiveIntegerField(default=0)
    # At least the code's active reservations (a hold past its time keeps counting until it is marked): raised by
    # reserve, lowered when a hold is consumed, released or ended, recounted when it blocks a use. It lets a redeem
    # without a token take its use with one conditional update, `redeemed_count + held < max_uses`, on the row's
    # newest version, without counting reservations under the row lock (books/lifecycle_sql.py).
    held = models.PositiveIntegerField(default=0, db_default=0)  # db_default: bulk COPY leaves the column out
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Overrides the book's valid_until.")
    # Random key from a cryptographic source; random assignment walks the free codes in this order.
    shuffle = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # Random assignment: the free codes of a book in shuffle order (partial: only free codes).
            models.Index(fields=["book", "shuffle"], condition=Q(state="free"), name="code_free_shuffle_idx"),
            # A user's codes (within a book, or across the tenant).
            models.Index(fields=["tenant", "user_id", "book"], condition=Q(user_id__isnull=False), name="code_user_idx"),
            # Codes of a book by state (changelists, stats).
            models.Index(fields=["book", "state"], name="code_book_state_idx"),
        ]
        constraints = [
            # A code by string: unique within its tenant (this index serves the look-up too).
            models.UniqueConstraint(fields=["tenant", "code"], name="code_unique_per_tenant"),
            models.CheckConstraint(condition=Q(redeemed_count__gte=0), name="code_redeemed_non_negative"),
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(redeemed_count__lte=F("max_uses")), name="code_redeemed_within_uses"
            ),
            models.CheckConstraint(condition=~Q(state="assigned") | Q(user_id__isnull=False), name="code_assigned_has_user"),
            models.CheckConstraint(condition=Q(code__regex=CODE_REGEX), name="code_format"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def uses_left(self) -> int | None:
        return None if self.max_uses is None else self.max_uses - self.redeemed_count


class BookCounter(models.Model):
    """The standing redemptions and discount of a book with a book-wide limit (max_redemptions, budget_amount): a
    database view that sums the book's BookAllowance shards (migration 0005), read by the admin and the checks.

    Only such a book has one. Nothing writes it: redeem and reverse write their share on one shard each.
    """

    book = models.OneToOneField(CouponBook, on_delete=models.DO_NOTHING, primary_key=True, related_name="counter")
    redemptions = models.IntegerField()
    discount = models.DecimalField(max_digits=16, decimal_places=2)

    class Meta:
        managed = False

    def __str__(self) -> str:
        return f"book {self.book_id}: {self.redemptions} redemptions, {self.discount} discount"


class BookAllowance(models.Model):
    """One of a limited book's BOOK_ALLOWANCE_SHARDS shards: a share of what its limits still allow, and its part
    of the book's standing redemptions and discount (books/services/book_limits.py).

    A use takes its share from one shard with room that nobody else holds (SKIP LOCKED), so the uses of a big
    campaign do not queue on one row; only when no free shard has room does a use lock them all and recount the
    book exactly (a "recount"), which also gives back what expired and released holds and reversals freed: between
    two recounts the allowance only shrinks, so it never exceeds what the limits allow. `redemptions` and
    `discount` are exact: their sum over the shards is the book's counter (BookCounter), one shard's alone is
    not (a reversal lands on any shard), hence no CHECK on them.
    """

    book = models.ForeignKey(CouponBook, on_delete=models.CASCADE, related_name="+")
    shard = models.PositiveSmallIntegerField()
    redemptions = models.IntegerField(default=0)
    discount = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    # What this shard may still give; null: the book has no such limit.
    uses_left = models.IntegerField(null=True)
    budget_left = models.DecimalField(max_digits=16, decimal_places=2, null=True)
    # What a hold takes of budget_left (rules.hold_per_use), as the last recount valued the book's holds.
    hold_value = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    # The `now` of the last recount: it counted the holds expiring after it, and only those, so a redeem that
    # consumes a hold finds here whether that hold's use is already taken (books/lock_objects.py).
    recounted_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["book", "shard"], name="bookallowance_unique"),
            # The fast path's WHERE already keeps these; the database backs it.
            models.CheckConstraint(condition=Q(uses_left__gte=0), name="bookallowance_uses_non_negative"),
            models.CheckConstraint(condition=Q(budget_left__gte=0), name="bookallowance_budget_non_negative"),
        ]

    def __str__(self) -> str:
        return f"book {self.book_id} shard {self.shard}: {self.uses_left} uses, {self.budget_left} left"


class BookUser(models.Model):
    """One end user's standing in one book: the row locked to serialise that user's claims in the book.

    The per-user limits (codes held, redemptions) span many code rows, so no single code lock protects them;
    every service that could raise a user's count takes this row's lock first, then re-counts under it.
    """

    book = models.ForeignKey(CouponBook, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["book", "user_id"], name="bookuser_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in book {self.book_id}"


class Reservation(models.Model):
    """A hold of one use of a code by one user until expires_at. Past expires_at it no longer counts."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RELEASED = "released", "Released"  # unlocked by the caller, or the code was voided
        EXPIRED = "expired", "Expired"  # marked by the expiry task after expires_at
        CONSUMED = "consumed", "Consumed"  # turned into a redemption

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    book = models.ForeignKey(CouponBook, on_delete=models.CASCADE, related_name="reservations")
    code = models.ForeignKey(Code, on_delete=models.CASCADE, related_name="reservations")
    user_id = models.CharField(max_length=255)
    token = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Active holds on a code (the uses check) and of a user in a book (the per-user limit).
            models.Index(fields=["code", "expires_at"], condition=Q(status="active"), name="reservation_code_active_idx"),
            models.Index(fields=["book", "user_id"], condition=Q(status="active"), name="reservation_user_active_idx"),
            # The expiry task's scan.
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="reservation_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code_id} held by {self.user_id} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class Event(models.Model):
    """The history of codes: one row per state change, written in the same transaction as the change.

    Bulk generation, upload and distribution write one event for the whole batch (code is null, data holds the count), so a
    million-code import is not a million history rows; a code's own created_at dates its arrival.
    """

    class Kind(models.TextChoices):
        GENERATED = "generated", "Generated"
        UPLOADED = "uploaded", "Uploaded"
        ASSIGNED = "assigned", "Assigned"
        DISTRIBUTED = "distributed", "Distributed"  # one event per distribution run (code null, counts in data)
        UNASSIGNED = "unassigned", "Unassigned"
        LOCKED = "locked", "Locked"
        UNLOCKED = "unlocked", "Unlocked"
        LOCK_EXPIRED = "lock_expired", "Lock expired"
        REDEEMED = "redeemed", "Redeemed"
        REVERSED = "reversed", "Reversed"
        VOIDED = "voided", "Voided"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    # No index of their own for book and code: event_book_idx and event_code_idx lead with them (every event
    # writes each index; the history reads and the cascades use the composite ones).
    book = models.ForeignKey(CouponBook, on_delete=models.CASCADE, related_name="events", db_index=False)
    code = models.ForeignKey(Code, null=True, blank=True, on_delete=models.CASCADE, related_name="events", db_index=False)
    reservation = models.ForeignKey(Reservation, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    user_id = models.CharField(max_length=255, blank=True)
    actor_type = models.CharField(max_length=16, choices=ACTOR_KIND_CHOICES)
    actor_id = models.CharField(max_length=150, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["code", "created_at"], name="event_code_idx"),
            models.Index(fields=["book", "created_at"], name="event_book_idx"),
        ]
        constraints = [
            # A reservation expires once: the expiry task, run twice, cannot record it twice.
            models.UniqueConstraint(
                fields=["reservation"], condition=Q(kind="lock_expired"), name="event_one_expiry_per_reservation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"
