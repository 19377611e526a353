"""{{ totals|money }}: per-currency totals, one line each; {{ amount|money:currency }}: one amount (backoffice.money)."""

from collections.abc import Mapping

from django import template

from ..money import money_lines, money_text

register = template.Library()


@register.filter
def money(value, currency: str = ""):
    if isinstance(value, Mapping):
        return money_lines(value)
    return money_text(value, currency)
