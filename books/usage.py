"""Reads for the back office's pages (the book admin and the dashboard): books with their usage figures, and
redemptions per day for the charts."""

from datetime import timedelta
from decimal import Decimal

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery, Sum, TextField, Value
from django.db.models.functions import Cast, Coalesce, JSONObject
from django.utils import timezone

from redemptions.models import Redemption
from redemptions.selectors import currency_order, redemptions_by_day
from tenants.models import Tenant

from .models import Code, CouponBook

CHART_DAYS = 30


def _count(queryset) -> Coalesce:
    return Coalesce(Subquery(queryset.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()), Value(0))


def books_with_usage(queryset: QuerySet[CouponBook]) -> QuerySet[CouponBook]:
    """Each book with its code counts by state, standing redemptions and discount given per currency (as
    `discount_rows`: read it with discount_given), in the same query.

    Correlated subqueries (not JOIN + GROUP BY): the database computes them only for the rows of the page shown,
    each one a count over the (book, state) index, instead of aggregating every code of every book first.
    """
    codes = Code.objects.filter(book=OuterRef("pk")).order_by().values("book")
    standing = Redemption.objects.filter(book=OuterRef("pk"), reversed_at__isnull=True).order_by()
    # One {currency, discount} per currency (the sum as text: a JSON number would come back as a float).
    per_currency = (
        standing.filter(discount__isnull=False)
        .values("currency")
        .annotate(total=Sum("discount"))
        .values(json=JSONObject(currency=F("currency"), discount=Cast(F("total"), TextField())))
    )
    return queryset.annotate(
        codes_total=_count(codes),
        codes_free=_count(codes.filter(state=Code.State.FREE)),
        codes_assigned=_count(codes.filter(state=Code.State.ASSIGNED)),
        codes_redeemed=_count(codes.filter(state=Code.State.REDEEMED)),
        redemptions_count=_count(standing.values("book")),
        discount_rows=ArraySubquery(per_currency),
    )


def discount_given(book: CouponBook) -> dict[str, Decimal]:
    """A book of books_with_usage: its discount given per currency, currencies in order."""
    rows = sorted(book.discount_rows or [], key=lambda row: currency_order(row["currency"]))
    return {row["currency"]: Decimal(row["discount"]) for row in rows}


def redemptions_per_day(*, tenant: Tenant, book: CouponBook | None = None, days: int = CHART_DAYS) -> list[dict]:
    """Standing redemptions and discount (per currency) per tenant-local day over the last `days` days, every day
    listed."""
    today = timezone.localdate(timezone=tenant.zoneinfo)
    first = today - timedelta(days=days - 1)
    found = redemptions_by_day(
        tenant=tenant, book_id=None if book is None else book.pk, since=timezone.now() - timedelta(days=days + 1)
    )
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        series.append(found.get(day, {"day": day, "redemptions": 0, "discounts": {}}))
    return series
