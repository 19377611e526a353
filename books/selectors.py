"""Reads of books and codes: look-ups, a user's codes, book statistics, and validation (a dry run of redeem).

Services call these look-ups; these never call services.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from core.exceptions import ApplicationError, id_detail
from tenants.models import Tenant

from . import lock_objects, rules
from .inputs import is_valid_code, normalize_code
from .models import Code, CouponBook, Event, Reservation

STATS_DAYS = 366


def book_get(*, tenant: Tenant, book_id: int) -> CouponBook:
    """The tenant's book (not locked: book rows change rarely, and the rules re-read it under the code lock)."""
    try:
        return CouponBook.objects.get(tenant=tenant, pk=book_id)
    except (CouponBook.DoesNotExist, TypeError, ValueError):
        raise ApplicationError("book_not_found", "No such coupon book.", {"book": id_detail(book_id)}) from None


def books_of_tenant(*, tenant: Tenant) -> QuerySet[CouponBook]:
    return CouponBook.objects.filter(tenant=tenant)


def code_get(*, tenant: Tenant, code: str, locked: bool = False) -> Code:
    """The tenant's code by its string (normalised), with its book; another tenant's code is simply not found.

    locked=True takes the code's row lock (lock_objects.code_lock_qs) in the same statement: for services that
    lock no user row first.
    """
    value = normalize_code(code)
    found = None
    if is_valid_code(value):
        codes = lock_objects.code_lock_qs() if locked else Code.objects.select_related("book")
        found = codes.filter(tenant=tenant, code=value).first()
    if found is None:
        raise ApplicationError("code_not_found", "No such code.", {"code": value[:64]})
    return found


def codes_of_book(*, book: CouponBook) -> QuerySet[Code]:
    return Code.objects.filter(book=book).order_by("pk")


def codes_of_user(*, tenant: Tenant, user_id: str, book_id: int | None = None) -> QuerySet[Code]:
    """The codes assigned to an end user in the tenant, newest assignment first (optionally of one book)."""
    codes = Code.objects.filter(tenant=tenant, user_id=user_id).select_related("book").order_by("-assigned_at", "-pk")
    if book_id is not None:
        codes = codes.filter(book=book_get(tenant=tenant, book_id=book_id))
    return codes


def code_history(*, code: Code) -> QuerySet[Event]:
    return Event.objects.filter(code=code).order_by("created_at", "pk")


@dataclass(frozen=True)
class Validation:
    valid: bool
    reason: str  # "ok" or the error code that redeem would answer with
    message: str
    discount: Decimal | None
    currency: str  # the discount's: the order's, else the book's ("" when unknown or not valid)


def code_validate(
    *, tenant: Tenant, code: str, user_id: str, amount: Decimal | None = None, currency: str = "", product_id: str = ""
) -> Validation:
    """Would redeem succeed now for this user? Changes nothing. An unknown code still raises. `currency` is the
    order's, cleaned at the edge with the amount (inputs.clean_order_currency).

    A user who holds an active reservation of the code is answered as their redeem-with-token would be: their
    own hold does not count against them (nor against the book's limits, read without their lock).
    """
    found = code_get(tenant=tenant, code=code)
    now = timezone.now()
    own = found.reservations.filter(rules.active_reservations(now=now), user_id=user_id).first()
    try:
        if own is not None:
            rules.use_open_check(code=found, user_id=user_id, now=now)
        else:
            rules.new_use_check(code=found, user_id=user_id, now=now)
        currency = rules.currency_check(book=found.book, currency=currency)
        discount = rules.discount_for(book=found.book, amount=amount, product_id=product_id)
        if found.book_limited:
            usage = rules.book_usage(book_id=found.book_id, now=now, without_reservation=own.pk if own else None)
            # The user's own hold counted already: its redeem is checked only on what it adds, as redeem does.
            rules.book_limits_check(
                book=found.book,
                usage=usage.plus_redemption(discount),
                adds_use=own is None,
                adds_discount=own is None or (discount or 0) > rules.hold_per_use(found.book),
            )
    except ApplicationError as exc:
        return Validation(valid=False, reason=exc.code, message=exc.message, discount=None, currency="")
    return Validation(valid=True, reason="ok", message="The code can be redeemed.", discount=discount, currency=currency)


def book_stats(*, book: CouponBook, per_day: bool = True) -> dict:
    """Counts by state, active reservations, redemptions (standing and reversed), discount given per currency, and
    (unless per_day=False, for a page that draws its own chart) the days of the last STATS_DAYS with redemptions."""
    from redemptions.models import Redemption
    from redemptions.selectors import discount_by_currency, redemptions_by_day

    now = timezone.now()
    by_state = dict(Code.objects.filter(book=book).values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    redemptions = Redemption.objects.filter(book=book)
    totals = redemptions.aggregate(
        redeemed=Count("pk", filter=Q(reversed_at__isnull=True)),
        reversed=Count("pk", filter=Q(reversed_at__isnull=False)),
    )
    stats = {
        "codes": {state: by_state.get(state, 0) for state in Code.State.values} | {"total": sum(by_state.values())},
        "active_reservations": Reservation.objects.filter(rules.active_reservations(now=now), book=book).count(),
        "redemptions": totals["redeemed"],
        "reversed": totals["reversed"],
        "discount_totals": discount_by_currency(redemptions),
    }
    if per_day:
        since = now - timedelta(days=STATS_DAYS)
        stats["per_day"] = list(redemptions_by_day(tenant=book.tenant, book_id=book.pk, since=since).values())
    return stats


@dataclass(frozen=True)
class BookLimitsUsage:
    """A book's campaign limits and how much of them is used, for the admin's book page and the API's stats."""

    max_redemptions: int | None
    redemptions: int  # standing
    budget_amount: Decimal | None
    discount: Decimal  # standing
    held: int  # active reservations
    held_discount: Decimal  # what they keep of the budget (rules.hold_per_use)
    budget_left: Decimal | None


def book_limits_usage(*, book: CouponBook) -> BookLimitsUsage | None:
    """The book's book-wide limits and their use now (no lock: a figure to show); None for a book without them."""
    if not book.has_book_limits:
        return None
    usage = rules.book_usage(book_id=book.pk, now=timezone.now())
    held_discount = usage.held * rules.hold_per_use(book) if usage.budget_amount is not None else Decimal(0)
    left = None if usage.budget_amount is None else max(usage.budget_amount - usage.discount - held_discount, Decimal(0))
    return BookLimitsUsage(
        max_redemptions=usage.max_redemptions,
        redemptions=usage.redemptions,
        budget_amount=usage.budget_amount,
        discount=usage.discount,
        held=usage.held,
        held_discount=held_discount,
        budget_left=left,
    )
