"""Reads of the redemption log, and the one rule of its money: totals per currency, never summed across them."""

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from core.exceptions import ApplicationError, id_detail
from tenants.models import Tenant

from .models import Redemption


def redemption_get(*, tenant: Tenant, redemption_id: int) -> Redemption:
    try:
        return Redemption.objects.select_related("code", "book").get(tenant=tenant, pk=redemption_id)
    except (Redemption.DoesNotExist, TypeError, ValueError):
        raise ApplicationError("redemption_not_found", "No such redemption.", {"redemption": id_detail(redemption_id)}) from None


@dataclass(frozen=True)
class RedemptionFilters:
    """What narrows the redemption log: the API's list query, the admin's list filters, search and selection.

    Plain values only, so an export job stores them as JSON and rebuilds its rows through redemptions_of_tenant
    (a stored query would not survive a Django upgrade).
    """

    book_id: int | None = None
    user_id: str | None = None
    since: datetime | None = None  # redeemed at or after
    until: datetime | None = None  # redeemed before
    reversed: bool | None = None
    search: str | None = None  # an exact order reference or end-user id (the admin's search box)
    ids: tuple[int, ...] | None = None  # the rows picked one by one (the admin's "export selected")

    def to_json(self) -> dict:
        data = asdict(self)
        for name in ("since", "until"):
            data[name] = data[name].isoformat() if data[name] is not None else None
        data["ids"] = list(self.ids) if self.ids is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RedemptionFilters":
        values = {field.name: data.get(field.name) for field in fields(cls)}
        for name in ("since", "until"):
            values[name] = datetime.fromisoformat(values[name]) if values[name] is not None else None
        values["ids"] = tuple(values["ids"]) if values["ids"] is not None else None
        return cls(**values)


def redemptions_search(rows: QuerySet[Redemption], term: str) -> QuerySet[Redemption]:
    """Rows whose order reference or end-user id is exactly `term` (index look-ups, never a LIKE scan)."""
    term = term.strip()
    if not term:
        return rows
    return rows.filter(Q(order_ref=term) | Q(user_id=term))


def redemptions_of_tenant(*, tenant: Tenant, filters: RedemptionFilters | None = None) -> QuerySet[Redemption]:
    """The tenant's redemptions, newest first, narrowed by book, user, period [since, until), reversal, search
    and selection."""
    filters = filters or RedemptionFilters()
    rows = Redemption.objects.filter(tenant=tenant).select_related("code", "book")
    if filters.book_id is not None:
        rows = rows.filter(book_id=filters.book_id)
    if filters.user_id:
        rows = rows.filter(user_id=filters.user_id)
    if filters.since is not None:
        rows = rows.filter(redeemed_at__gte=filters.since)
    if filters.until is not None:
        rows = rows.filter(redeemed_at__lt=filters.until)
    if filters.reversed is not None:
        rows = rows.filter(reversed_at__isnull=not filters.reversed)
    if filters.search:
        rows = redemptions_search(rows, filters.search)
    if filters.ids is not None:
        rows = rows.filter(pk__in=filters.ids)
    return rows.order_by("-redeemed_at", "-pk")


def currency_order(currency: str) -> tuple[bool, str]:
    """Currencies in alphabetical order, the unknown one ("": rows stored before redemptions had a currency) last."""
    return (currency == "", currency)


def discount_by_currency(rows: QuerySet[Redemption]) -> dict[str, Decimal]:
    """The discount the standing (not reversed) redemptions of `rows` gave, per currency: money is never summed
    across currencies. Currencies with no known discount (percent redemptions sent without an amount) are left out."""
    totals = (
        rows.filter(reversed_at__isnull=True, discount__isnull=False)
        .order_by()
        .values("currency")
        .annotate(total=Sum("discount"))
        .values_list("currency", "total")
    )
    return dict(sorted(totals, key=lambda row: currency_order(row[0])))


def money_add(totals: dict[str, Decimal], more: dict[str, Decimal]) -> dict[str, Decimal]:
    """Two per-currency totals added currency by currency (a new dict)."""
    added = dict(totals)
    for currency, amount in more.items():
        added[currency] = added.get(currency, Decimal("0")) + amount
    return dict(sorted(added.items(), key=lambda item: currency_order(item[0])))


def redemptions_by_day(*, tenant: Tenant, since: datetime, book_id: int | None = None) -> dict[date, dict]:
    """Standing redemptions and discount given per tenant-local day from `since` (the discount per currency): the
    days with any redemption (a day whose redemptions were all reversed shows 0).

    The one count behind the book's statistics (API) and the back office's charts (which list every day).
    """
    rows = Redemption.objects.filter(tenant=tenant, redeemed_at__gte=since)
    if book_id is not None:
        rows = rows.filter(book_id=book_id)
    standing = Q(reversed_at__isnull=True)
    days: dict[date, dict] = {}
    for row in (
        rows.annotate(day=TruncDate("redeemed_at", tzinfo=tenant.zoneinfo))
        .values("day", "currency")
        .annotate(redemptions=Count("pk", filter=standing), discount=Sum("discount", filter=standing))
        .order_by("day")
    ):
        entry = days.setdefault(row["day"], {"day": row["day"], "redemptions": 0, "discounts": {}})
        entry["redemptions"] += row["redemptions"]
        if row["discount"] is not None:
            entry["discounts"] = money_add(entry["discounts"], {row["currency"]: row["discount"]})
    return days
