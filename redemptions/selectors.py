"""Reads of the redemption log."""

from datetime import datetime

from django.db.models import QuerySet

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
