"""Reads of books and codes: look-ups, a user's codes, book statistics, and validation (a dry run of redeem)."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.exceptions import ApplicationError
from tenants.models import Tenant

from . import rules
from .inputs import clean_amount, clean_text, clean_user_id
from .models import Code, CouponBook, Event, Reservation
from .services.codes import book_for_update_get, code_find, reservation_rules_check

STATS_DAYS = 366


def book_get(*, tenant: Tenant, book_id: object) -> CouponBook:
    return book_for_update_get(tenant=tenant, book_id=book_id)


def books_of_tenant(*, tenant: Tenant) -> QuerySet[CouponBook]:
    return CouponBook.objects.filter(tenant=tenant)


def code_get(*, tenant: Tenant, code: object) -> Code:
    return code_find(tenant=tenant, code=code)


def codes_of_book(*, book: CouponBook) -> QuerySet[Code]:
    return Code.objects.filter(book=book).order_by("pk")


def codes_of_user(*, tenant: Tenant, user_id: object, book_id: object = None) -> QuerySet[Code]:
    """The codes assigned to an end user in the tenant, newest assignment first (optionally of one book)."""
    user_id = clean_user_id(user_id)
    codes = Code.objects.filter(tenant=tenant, user_id=user_id).select_related("book").order_by("-assigned_at", "-pk")
    if book_id not in (None, ""):
        codes = codes.filter(book=book_get(tenant=tenant, book_id=book_id))
    return codes


def code_history(*, code: Code) -> QuerySet[Event]:
    return Event.objects.filter(code=code).order_by("created_at", "pk")


def code_active_reservations(*, code: Code) -> int:
    return code.reservations.filter(rules.active_reservations(now=timezone.now())).count()


@dataclass(frozen=True)
class Validation:
    valid: bool
    reason: str  # "ok" or the error code that redeem would answer with
    message: str
    discount: Decimal | None


def code_validate(*, tenant: Tenant, code: object, user_id: object, amount: object = None, product_id: object = "") -> Validation:
    """Would redeem succeed now for this user? Changes nothing. Unknown codes and bad input still raise.

    A user who holds an active reservation of the code is answered as their redeem-with-token would be: their
    own hold does not count against them.
    """
    user_id = clean_user_id(user_id)
    amount = clean_amount(amount)
    product_id = clean_text(product_id, field="product_id")
    found = code_find(tenant=tenant, code=code)
    now = timezone.now()
    own = found.reservations.filter(rules.active_reservations(now=now), user_id=user_id).first()
    try:
        if own is not None:
            rules.code_holder_check(book=found.book, code=found, user_id=user_id)
            rules.book_open_check(book=found.book, code=found, now=now)
        else:
            reservation_rules_check(code=found, user_id=user_id, now=now)
        discount = rules.discount_for(book=found.book, amount=amount, product_id=product_id)
    except ApplicationError as exc:
        return Validation(valid=False, reason=exc.code, message=exc.message, discount=None)
    return Validation(valid=True, reason="ok", message="The code can be redeemed.", discount=discount)


def book_stats(*, book: CouponBook) -> dict:
    """Counts by state, active reservations, redemptions (standing and reversed), discount given, per day."""
    from redemptions.models import Redemption

    now = timezone.now()
    by_state = dict(Code.objects.filter(book=book).values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    redemptions = Redemption.objects.filter(book=book)
    totals = redemptions.aggregate(
        redeemed=Count("pk", filter=Q(reversed_at__isnull=True)),
        reversed=Count("pk", filter=Q(reversed_at__isnull=False)),
        discount=Sum("discount", filter=Q(reversed_at__isnull=True)),
    )
    per_day = (
        redemptions.filter(redeemed_at__gte=now - timedelta(days=STATS_DAYS))
        .annotate(day=TruncDate("redeemed_at", tzinfo=book.tenant.zoneinfo))
        .values("day")
        .annotate(
            redemptions=Count("pk", filter=Q(reversed_at__isnull=True)),
            discount=Sum("discount", filter=Q(reversed_at__isnull=True)),
        )
        .order_by("day")
    )
    return {
        "codes": {state: by_state.get(state, 0) for state in Code.State.values} | {"total": sum(by_state.values())},
        "active_reservations": Reservation.objects.filter(rules.active_reservations(now=now), book=book).count(),
        "redemptions": totals["redeemed"],
        "reversed": totals["reversed"],
        "discount_total": totals["discount"] or Decimal("0"),
        "per_day": [
            {"day": row["day"], "redemptions": row["redemptions"], "discount": row["discount"] or Decimal("0")} for row in per_day
        ],
    }
