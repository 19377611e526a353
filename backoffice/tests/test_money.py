"""Money as the back office shows it: two decimals and its currency, one line per currency (backoffice.money)."""

from decimal import Decimal

import pytest
from django.template import Context, Template

from backoffice.money import money_lines, money_text


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (Decimal("169.760000000000"), "EUR", "169.76 EUR"),
        (Decimal("5"), "USD", "5.00 USD"),
        (Decimal("0.005"), "EUR", "0.01 EUR"),  # half up, as the discount itself is rounded
        (Decimal("1234567.8"), "JPY", "1,234,567.80 JPY"),
        ("12.5", "GBP", "12.50 GBP"),
        (Decimal("3"), "", "3.00 (currency unknown)"),
        (None, "EUR", ""),
    ],
)
def test_money_text_has_two_decimals_and_its_currency(amount, currency, shown):
    assert money_text(amount, currency) == shown


def test_money_lines_give_one_escaped_line_per_currency():
    assert money_lines({"EUR": Decimal("169.76"), "USD": Decimal("12.5")}) == (
        '<span class="money">169.76 EUR</span><br><span class="money">12.50 USD</span>'
    )
    assert money_lines({}) == "—"
    assert "<script>" not in money_lines({"<script>": Decimal("1")})


def test_the_money_filter_renders_totals_and_single_amounts():
    template = Template("{% load money %}{{ totals|money }} / {{ amount|money:currency }}")
    rendered = template.render(Context({"totals": {"EUR": Decimal("1.5")}, "amount": Decimal("2"), "currency": "USD"}))
    assert rendered == '<span class="money">1.50 EUR</span> / 2.00 USD'
