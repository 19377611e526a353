"""Create, update and archive coupon books."""

from datetime import datetime
from decimal import Decimal
from typing import TypedDict, Unpack

from django.db import transaction
from django.db.models import Case, Count, F, Max, Q, Value, When
from django.utils import timezone

from core.exceptions import ApplicationError
from core.transactions import deadlock_retried
from tenants.models import Tenant

from .. import lock_objects
from ..models import Code, CouponBook, Reservation
from ..rules import active_reservations
from .book_limits import book_allowance_recount, book_counter_start, book_counter_stop
from .events import book_updated_record

LISTED = 20  # offending codes named in an error


class BookSettings(TypedDict, total=False):
    """A book's editable fields but its name, as the edges hand them over: typed and normalised (the API's
    BookInput, the admin's CouponBookForm). A field left out keeps the model's default, or its stored value."""

    description: str
    status: str
    discount_type: str
    discount_value: Decimal
    currency: str
    product_ids: list[str]
    valid_from: datetime | None
    valid_until: datetime | None
    max_codes_per_user: int | None
    max_redemptions_per_user: int | None
    uses_per_code: int | None
    requires_assignment: bool
    lock_ttl_seconds: int
    # Campaign limits (null = none): book-wide (max_redemptions, budget_amount in the book's currency), per order.
    max_redemptions: int | None
    budget_amount: Decimal | None
    min_order_amount: Decimal | None
    max_discount_amount: Decimal | None


class BookChanges(BookSettings, total=False):
    name: str


# What a caller may change on a book, in the order the API shows it.
EDITABLE_FIELDS = ("name", *BookSettings.__annotations__)


def _bad(field: str, message: str) -> ApplicationError:
    return ApplicationError("invalid_input", message, {"field": field})


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


def _book_changed(*, book: CouponBook, changes: BookChanges) -> tuple[CouponBook, bool]:
    """Apply changes to `book` (in memory) after checking every rule they must pass; whether uses_per_code
    changed.

    Lowering max_redemptions or budget_amount below what the book has already given is allowed: it closes the
    campaign ("stop now"), and reversals may open it again; nothing already given is taken back.
    """
    if book.status == CouponBook.Status.ARCHIVED and changes.get("status", book.status) == CouponBook.Status.ARCHIVED and changes:
        raise ApplicationError("book_archived", "An archived book cannot be changed; restore it first by setting its status.")
    uses_changed = "uses_per_code" in changes and changes["uses_per_code"] != book.uses_per_code
    for field, value in changes.items():
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


def book_save_check(*, tenant: Tenant, book: CouponBook | None, values: BookChanges) -> None:
    """Raise the ApplicationError that book_create (book None) or book_update would raise for these values, and
    change nothing: for a form that shows a rule only the service knows as an error on its fields.

    It reads the book as stored now; the service re-checks under its row lock when it saves (the checkouts in
    progress that _holds_within_uses_check counts can only be seen there).
    """
    if book is None:
        _book_consistency_check(CouponBook(tenant=tenant, **values))
    else:
        _book_changed(book=CouponBook.objects.get(pk=book.pk), changes=values)


def _editable_check(fields: BookChanges) -> None:
    """Only editable fields: a caller's mistake (the edges pass no other), so a TypeError, not a client's 400."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"Not editable field(s) of a book: {', '.join(sorted(unknown))}.")


@transaction.atomic
def book_create(*, tenant: Tenant, name: str, **fields: Unpack[BookSettings]) -> CouponBook:
    _editable_check(fields)
    book = CouponBook(tenant=tenant, name=name, **fields)
    _book_consistency_check(book)
    book.save()
    if book.has_book_limits:
        book_counter_start(book=book)
    return book


# What a limited book's shards are shared out from (book_limits.book_allowance_recount): its limits and what a
# hold takes of the budget (rules.hold_per_use).
LIMIT_SETTINGS = {"max_redemptions", "budget_amount", "discount_type", "discount_value", "max_discount_amount"}


@deadlock_retried  # its recount meets the uses' (core/transactions.py)
@transaction.atomic
def book_update(*, book: CouponBook, **fields: Unpack[BookChanges]) -> CouponBook:
    """Change a book's fields. A change of uses_per_code is carried to its codes (their max_uses), and so is
    switching the book-wide limits on or off (their book_limited; switching on starts the book's shards); a change
    of the limits of a limited book shares its allowance out again."""
    _editable_check(fields)
    locked = lock_objects.book_lock(book_id=book.pk)
    was_limited = locked.has_book_limits
    book, uses_changed = _book_changed(book=locked, changes=fields)
    book.save()
    if book.has_book_limits != was_limited:
        # Every code says whether its uses are counted (Code.book_limited). This UPDATE locks each code, so it
        # waits for the uses under way; the counter then starts from a snapshot that holds them all.
        Code.objects.filter(book=book).update(book_limited=book.has_book_limits)
        if book.has_book_limits:
            book_counter_start(book=book)
        else:
            book_counter_stop(book=book)
    elif book.has_book_limits and LIMIT_SETTINGS & fields.keys():
        # The shards' allowance was shared out under the old limits and holds valued at the old discount: share
        # it out again under the new ones (a limit lowered below what was given leaves no room).
        book_allowance_recount(book_id=book.pk)
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
    if fields:
        book_updated_record(book=book, changed=list(fields))
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
