"""Reads for the back office's pages (the book admin and the dashboard): books with their usage figures, and
redemptions per day for the charts."""

from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from redemptions.models import Redemption
from tenants.models import Tenant

from .models import Code, CouponBook

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
    zone = tenant.zoneinfo
    today = timezone.localdate(timezone=zone)
    first = today - timedelta(days=days - 1)
    rows = Redemption.objects.filter(tenant=tenant, redeemed_at__gte=timezone.now() - timedelta(days=days + 1))
    if book is not None:
        rows = rows.filter(book=book)
    found = {
        row["day"]: row
        for row in rows.annotate(day=TruncDate("redeemed_at", tzinfo=zone))
        .values("day")
        .annotate(
            redemptions=Count("pk", filter=Q(reversed_at__isnull=True)),
            discount=Sum("discount", filter=Q(reversed_at__isnull=True)),
        )
        .order_by("day")
    }
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = found.get(day, {})
        series.append({"day": day, "redemptions": row.get("redemptions", 0), "discount": row.get("discount") or Decimal("0")})
    return series
