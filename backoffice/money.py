"""Money as the back office shows it: two decimals and its currency ("169.76 EUR"), one line per currency.

The one formatting of money in the admin (the `money` template filter and the changelists' columns use it), so
an amount never appears as a raw decimal or without its currency, and totals are never summed across currencies.
"""

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

CENT = Decimal("0.01")
UNKNOWN_CURRENCY = "(currency unknown)"  # rows stored before redemptions had a currency
NO_MONEY = "—"


def money_text(amount: Decimal | int | float | str | None, currency: str) -> str:
    """'1,169.76 EUR'; '' for no amount. A row whose currency is not known says so rather than showing a bare number."""
    if amount is None or amount == "":
        return ""
    value = Decimal(str(amount)).quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{value:,.2f} {currency or UNKNOWN_CURRENCY}"


def money_lines(totals: Mapping[str, Decimal]) -> SafeString:
    """Per-currency totals, one line per currency (HTML, escaped); a dash when there is none."""
    if not totals:
        return mark_safe(NO_MONEY)
    return format_html_join(mark_safe("<br>"), '<span class="money">{}</span>', ((money_text(v, c),) for c, v in totals.items()))
