"""Reads of the redemption log."""

from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from core.exceptions import ApplicationError, id_detail
from tenants.models import Tenant

from .models import Redemption


def redemption_get(*, tenant: Tenant, redemption_id: object) -> Redemption:
    try:
        return Redemption.objects.select_related("code", "book").get(tenant=tenant, pk=int(redemption_id))
    except (Redemption.DoesNotExist, TypeError, ValueError):
        raise ApplicationError("redemption_not_found", "No such redemption.", {"redemption": id_detail(redemption_id)}) from None


def redemptions_of_tenant(
    *,
    tenant: Tenant,
    book_id: int | None = None,
    user_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reversed: bool | None = None,
) -> QuerySet[Redemption]:
    """The tenant's redemptions, newest first, narrowed by book, user, period [since, until) and reversal."""
    rows = Redemption.objects.filter(tenant=tenant).select_related("code", "book")
    if book_id is not None:
        rows = rows.filter(book_id=book_id)
    if user_id:
        rows = rows.filter(user_id=user_id)
    if since is not None:
        rows = rows.filter(redeemed_at__gte=since)
    if until is not None:
        rows = rows.filter(redeemed_at__lt=until)
    if reversed is not None:
        rows = rows.filter(reversed_at__isnull=not reversed)
    return rows.order_by("-redeemed_at", "-pk")


def redemptions_by_day(*, tenant: Tenant, since: datetime, book_id: int | None = None) -> dict[date, dict]:
    """Standing redemptions and discount given per tenant-local day from `since`: the days with any redemption (a day whose redemptions were all reversed shows 0).

    The one count behind the book's statistics (API) and the back office's charts (which list every day).
    """
    rows = Redemption.objects.filter(tenant=tenant, redeemed_at__gte=since)
    if book_id is not None:
        rows = rows.filter(book_id=book_id)
    standing = Q(reversed_at__isnull=True)
    return {
        row["day"]: {"day": row["day"], "redemptions": row["redemptions"], "discount": row["discount"] or Decimal("0")}
        for row in rows.annotate(day=TruncDate("redeemed_at", tzinfo=tenant.zoneinfo))
        .values("day")
        .annotate(redemptions=Count("pk", filter=standing), discount=Sum("discount", filter=standing))
        .order_by("day")
    }
