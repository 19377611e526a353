"""Reads for the back office: books with their usage figures, and redemptions per day for the charts."""

from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from books.models import Code, CouponBook
from redemptions.models import Redemption
from redemptions.selectors import redemptions_by_day
from tenants.models import Tenant

CHART_DAYS = 30


def _count(queryset) -> Coalesce:
    return Coalesce(Subquery(queryset.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()), Value(0))


def books_with_usage(queryset: QuerySet[CouponBook]) -> QuerySet[CouponBook]:
    """Each book with its code counts by state, standing redemptions and discount given, in the same query.

    Correlated subqueries (not JOIN + GROUP BY): the database computes them only for the rows of the page shown,
    each one a count over the (book, state) index, instead of aggregating every code of every book first.
    """
    codes = Code.objects.filter(book=OuterRef("pk")).order_by().values("book")
    standing = Redemption.objects.filter(book=OuterRef("pk"), reversed_at__isnull=True).order_by().values("book")
    return queryset.annotate(
        codes_total=_count(codes),
        codes_free=_count(codes.filter(state=Code.State.FREE)),
        codes_assigned=_count(codes.filter(state=Code.State.ASSIGNED)),
        codes_redeemed=_count(codes.filter(state=Code.State.REDEEMED)),
        redemptions_count=_count(standing),
        discount_given=Coalesce(
            Subquery(
                standing.annotate(s=Sum("discount")).values("s")[:1], output_field=DecimalField(max_digits=18, decimal_places=2)
            ),
            Value(Decimal("0")),
            output_field=DecimalField(max_digits=18, decimal_places=2),
        ),
    )


def redemptions_per_day(*, tenant: Tenant, book: CouponBook | None = None, days: int = CHART_DAYS) -> list[dict]:
    """Standing redemptions and discount per tenant-local day over the last `days` days, every day listed."""
    today = timezone.localdate(timezone=tenant.zoneinfo)
    first = today - timedelta(days=days - 1)
    found = redemptions_by_day(
        tenant=tenant, book_id=None if book is None else book.pk, since=timezone.now() - timedelta(days=days + 1)
    )
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        series.append(found.get(day, {"day": day, "redemptions": 0, "discount": Decimal("0")}))
    return series
