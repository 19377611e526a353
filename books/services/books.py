"""Create, update and archive coupon books."""

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, F, Max, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.exceptions import ApplicationError
from tenants.models import Tenant

from .. import lock_objects
from ..inputs import clean_moment
from ..models import Code, CouponBook, Reservation
from ..rules import active_reservations
from .book_limits import book_counter_start
from .events import book_updated_record

EDITABLE_FIELDS = (
    "name",
    "description",
    "status",
    "discount_type",
    "discount_value",
    "currency",
    "product_ids",
    "valid_from",
    "valid_until",
    "max_codes_per_user",
    "max_redemptions_per_user",
    "uses_per_code",
    "requires_assignment",
    "lock_ttl_seconds",
    "max_redemptions",
    "budget_amount",
    "min_order_amount",
    "max_discount_amount",
)
LISTED = 20  # offending codes named in an error
LIMIT_FIELDS = ("max_codes_per_user", "max_redemptions_per_user", "uses_per_code", "max_redemptions")
MONEY_LIMIT_FIELDS = ("budget_amount", "min_order_amount", "max_discount_amount")  # optional amounts, null = none


def _bad(field: str, message: str) -> ApplicationError:
    return ApplicationError("invalid_input", message, {"field": field})


def _clean_datetime(field: str, value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = parse_datetime(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime):
        raise _bad(field, f"{field} must be an ISO 8601 date and time.")
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return clean_moment(value, field=field)


def _clean_limit(field: str, value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise _bad(field, f"{field} must be a whole number from 1 up, or null for unlimited.")
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or number > 2_000_000_000 or (isinstance(value, float) and not value.is_integer()):
        raise _bad(field, f"{field} must be a whole number from 1 up, or null for unlimited.")
    return number


def _clean_money(field: str, value: Any) -> Decimal | None:
    """An optional amount of money: a decimal from 0 up with at most two decimals' worth (rounded to cents)."""
    if value in (None, ""):
        return None
    try:
        number = None if isinstance(value, bool) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite() or number < 0 or number >= Decimal("1e10"):
        raise _bad(field, f"{field} must be an amount from 0 up (below 10,000,000,000), or null for none.")
    return number.quantize(Decimal("0.01"))


def _clean_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Type-check and normalise the editable fields present in `values` (absent ones are left alone)."""
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError("invalid_input", f"Unknown field(s): {', '.join(sorted(unknown))}.", {"fields": sorted(unknown)})
    clean: dict[str, Any] = {}
    for field, value in values.items():
        if field in ("name", "description", "currency"):
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise _bad(field, f"{field} must be a string.")
            value = value.strip()
            limit = {"name": 200, "description": 5000, "currency": 3}[field]
            if len(value) > limit or "\x00" in value:
                raise _bad(field, f"{field} must be at most {limit} characters.")
            if field == "name" and not value:
                raise _bad(field, "A book needs a name.")
            if field == "currency":
                value = value.upper()
                if value and not (len(value) == 3 and value.isascii() and value.isalpha()):
                    raise _bad(field, "currency must be a three-letter ISO 4217 code.")
        elif field == "status":
            if value not in CouponBook.Status.values:
                raise _bad(field, f"status must be one of {', '.join(CouponBook.Status.values)}.")
        elif field == "discount_type":
            if value not in CouponBook.DiscountType.values:
                raise _bad(field, f"discount_type must be one of {', '.join(CouponBook.DiscountType.values)}.")
        elif field == "discount_value":
            try:
                value = Decimal(str(value))
            except (InvalidOperation, ValueError):
                raise _bad(field, "discount_value must be a decimal number.") from None
            if not value.is_finite() or value < 0 or value >= Decimal("1e10"):
                raise _bad(field, "discount_value must be a number from 0 up.")
            value = value.quantize(Decimal("0.01"))
        elif field == "product_ids":
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in value):
                raise _bad(field, "product_ids must be a list of product ids (strings).")
            value = [str(p).strip() for p in value]
            if len(value) > 10_000 or any(not p or len(p) > 255 or "\x00" in p for p in value):
                raise _bad(field, "product_ids holds at most 10,000 non-empty ids of up to 255 characters.")
        elif field in ("valid_from", "valid_until"):
            value = _clean_datetime(field, value)
        elif field in LIMIT_FIELDS:
            value = _clean_limit(field, value)
        elif field in MONEY_LIMIT_FIELDS:
            value = _clean_money(field, value)
        elif field == "requires_assignment":
            if not isinstance(value, bool):
                raise _bad(field, "requires_assignment must be true or false.")
        elif field == "lock_ttl_seconds":
            low, high = settings.COUPONS["LOCK_TTL_MIN"], settings.COUPONS["LOCK_TTL_MAX"]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _bad(field, f"lock_ttl_seconds must be a whole number from {low} to {high}.")
        clean[field] = value
    return clean


def _book_consistency_check(book: CouponBook) -> None:
    if book.discount_type == CouponBook.DiscountType.PERCENT and book.discount_value > 100:
        raise _bad("discount_value", "A percent discount is at most 100.")
    if book.discount_type == CouponBook.DiscountType.FIXED and not book.currency:
        raise _bad("currency", "A fixed discount needs a currency.")
    if book.valid_from and book.valid_until and book.valid_until <= book.valid_from:
        raise _bad("valid_until", "valid_until must be after valid_from.")
    if book.budget_amount is not None and not book.currency:
        raise _bad("currency", "A budget is an amount in the book's currency: set the currency.")
    if book.budget_amount is not None and book.budget_amount <= 0:
        raise _bad("budget_amount", "A budget must be above 0 (leave it empty for none).")
    if book.max_discount_amount is not None:
        if book.discount_type != CouponBook.DiscountType.PERCENT:
            raise _bad("max_discount_amount", "max_discount_amount caps a percent discount; a fixed discount is its own cap.")
        if book.max_discount_amount <= 0:
            raise _bad("max_discount_amount", "A discount cap must be above 0 (leave it empty for none).")


def _book_changed(*, book: CouponBook, clean: dict[str, Any]) -> tuple[CouponBook, bool]:
    """Apply cleaned changes to `book` (in memory) after checking every rule they must pass; whether
    uses_per_code changed.

    Lowering max_redemptions or budget_amount below what the book has already given is allowed: it closes the
    campaign ("stop now"), and reversals may open it again; nothing already given is taken back.
    """
    if book.status == CouponBook.Status.ARCHIVED and clean.get("status", book.status) == CouponBook.Status.ARCHIVED and clean:
        raise ApplicationError("book_archived", "An archived book cannot be changed; restore it first by setting its status.")
    uses_changed = "uses_per_code" in clean and clean["uses_per_code"] != book.uses_per_code
    for field, value in clean.items():
        setattr(book, field, value)
    _book_consistency_check(book)
    if uses_changed and book.uses_per_code is not None:
        most = Code.objects.filter(book=book).aggregate(most=Max("redeemed_count"))["most"] or 0
        if most > book.uses_per_code:
            raise ApplicationError(
                "uses_below_redemptions",
                f"A code of this book was already redeemed {most} times; uses_per_code cannot go below that.",
                {"most_redeemed": most},
            )
    return book, uses_changed


def book_save_check(*, tenant: Tenant, book: CouponBook | None, values: dict[str, Any]) -> None:
    """Raise the ApplicationError that book_create (book None) or book_update would raise for these values, and
    change nothing: for a form that shows a rule only the service knows as an error on its fields.

    It reads the book as stored now; the service re-checks under its row lock when it saves (the checkouts in
    progress that _holds_within_uses_check counts can only be seen there).
    """
    clean = _clean_fields(values if book is not None else {"name": values.get("name", ""), **values})
    if book is None:
        _book_consistency_check(CouponBook(tenant=tenant, **clean))
    else:
        _book_changed(book=CouponBook.objects.get(pk=book.pk), clean=clean)


@transaction.atomic
def book_create(*, tenant: Tenant, name: str, **fields: Any) -> CouponBook:
    clean = _clean_fields({"name": name, **fields})
    book = CouponBook(tenant=tenant, **clean)
    _book_consistency_check(book)
    book.save()
    if book.has_book_limits:
        book_counter_start(book=book)
    return book


@transaction.atomic
def book_update(*, book: CouponBook, **fields: Any) -> CouponBook:
    """Change a book's fields. A change of uses_per_code is carried to its codes (their max_uses), and so is
    switching the book-wide limits on or off (their book_limited; switching on starts the book's counter)."""
    clean = _clean_fields(fields)
    locked = lock_objects.book_lock(book_id=book.pk)
    was_limited = locked.has_book_limits
    book, uses_changed = _book_changed(book=locked, clean=clean)
    book.save()
    if book.has_book_limits != was_limited:
        # Every code says whether its uses are counted (Code.book_limited). This UPDATE locks each code, so it
        # waits for the uses under way; the counter then starts from a snapshot that holds them all.
        Code.objects.filter(book=book).update(book_limited=book.has_book_limits)
        if book.has_book_limits:
            book_counter_start(book=book)
    if uses_changed:
        codes = Code.objects.filter(book=book)
        codes.update(max_uses=book.uses_per_code)
        if book.uses_per_code is not None:
            _holds_within_uses_check(book)
        # The state follows the new number of uses (voided codes stay voided): a code with every use redeemed is
        # "redeemed"; a "redeemed" code that has a use again goes back to its holder, or to the free pool.
        used_up = Q(max_uses__isnull=False, redeemed_count__gte=F("max_uses"))
        codes.filter(used_up, state__in=[Code.State.FREE, Code.State.ASSIGNED]).update(state=Code.State.REDEEMED)
        codes.filter(state=Code.State.REDEEMED).exclude(used_up).update(
            state=Case(When(user_id__isnull=False, then=Value(Code.State.ASSIGNED)), default=Value(Code.State.FREE))
        )
    if clean:
        book_updated_record(book=book, changed=list(clean))
    return book


def _holds_within_uses_check(book: CouponBook) -> None:
    """After max_uses changed: no code may hold more active reservations than it has uses left.

    Runs after the UPDATE of the book's codes, which row-locked every one of them and so waited for every lock or
    redeem already under way on them; this fresh statement sees their reservations, and later ones wait for us.
    """
    over = (
        Reservation.objects.filter(active_reservations(now=timezone.now()), book=book)
        .values("code", "code__max_uses", "code__redeemed_count")
        .annotate(held=Count("pk"))
        .filter(held__gt=F("code__max_uses") - F("code__redeemed_count"))
        .values_list("code__code", flat=True)[:LISTED]
    )
    if over:
        raise ApplicationError(
            "uses_below_redemptions",
            "Checkouts in progress hold more uses of some codes than the new uses_per_code leaves; try again when they end.",
            {"codes": list(over)},
        )


def book_archive(*, book: CouponBook) -> CouponBook | None:
    """Archive a book that has codes (its history must stay); delete one that never had any. Returns None when deleted."""
    with transaction.atomic():
        book = lock_objects.book_lock(book_id=book.pk)
        if not Code.objects.filter(book=book).exists() and not book.events.exists():
            book.delete()
            return None
        if book.status != CouponBook.Status.ARCHIVED:
            book.status = CouponBook.Status.ARCHIVED
            book.save(update_fields=["status", "updated_at"])
            book_updated_record(book=book, changed=["status"])
        return book
