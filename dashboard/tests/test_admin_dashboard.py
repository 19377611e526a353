"""The admin index of a tenant user is their dashboard: their books with usage figures and charts."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tenants.models import Role
from tests.factories import CodeFactory, CouponBookFactory
from tests.helpers import logged_in, redemption_make

pytestmark = pytest.mark.django_db


def test_dashboard_shows_the_tenants_books_with_figures_and_charts(client, tenant, other_tenant):
    book = CouponBookFactory(tenant=tenant, name="Dash-Book")
    CodeFactory.create_batch(4, book=book)
    redemption_make(book, discount="3.00")
    CouponBookFactory(tenant=other_tenant, name="Other-Dash-Book")
    logged_in(client, tenant, Role.MARKETING)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="dashboard-books"' in page
    assert "Dash-Book" in page and "Other-Dash-Book" not in page
    assert "<svg" in page and "Redemptions per day" in page and "Redemptions per book" in page
    assert "Coupon books" in page  # the usual list of models stays below


def test_superuser_gets_the_plain_index(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="x-Long-pass-1"))
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="dashboard-books"' not in page and "Coupon books" in page


def test_dashboard_needs_a_login(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_dashboard_totals_money_per_currency_with_two_decimals(client, tenant):
    eur = CouponBookFactory(tenant=tenant, name="Euro book", discount_type="fixed", discount_value="5", currency="EUR")
    usd = CouponBookFactory(tenant=tenant, name="Dollar book", discount_type="fixed", discount_value="7", currency="USD")
    for index, discount in enumerate(("100.00", "69.76")):
        redemption_make(eur, discount=discount, currency="EUR", user_id=f"e{index}")
    redemption_make(usd, discount="12.5", currency="USD", user_id="u")
    refunded = redemption_make(usd, discount="99.00", currency="USD", user_id="r")
    type(refunded).objects.filter(pk=refunded.pk).update(reversed_at=refunded.redeemed_at, reversed_by_type="staff")
    logged_in(client, tenant, Role.ACCOUNTANT)
    page = client.get(reverse("admin:index")).content.decode()
    totals = page.split('id="dashboard-discount">')[1].split("</td>")[0]
    # One line per currency, never one sum of them; the reversed redemption gives nothing.
    assert totals == '<span class="money">169.76 EUR</span><br><span class="money">12.50 USD</span>'
    rows = page.split('id="dashboard-books"')[1]
    assert '<span class="money">169.76 EUR</span>' in rows and '<span class="money">12.50 USD</span>' in rows


def test_the_per_book_chart_keeps_long_names_readable(client, tenant):
    long_name = "Summer welcome campaign for returning newsletter subscribers 2026"
    for index in range(25):
        CouponBookFactory(tenant=tenant, name=f"{long_name} #{index:02d}")
    logged_in(client, tenant, Role.MARKETING)
    page = client.get(reverse("admin:index")).content.decode()
    chart = page.split('aria-label="Redemptions per book"')[1].split("</svg>")[0]
    # One row per book (the 20 newest), each name cut with an ellipsis, the whole name in its tooltip.
    assert chart.count('<g class="row">') == 20
    assert f"<title>{long_name} #24: 0</title>" in chart
    labels = [part.split(">", 1)[1].split("<", 1)[0] for part in chart.split('<text class="label"')[1:]]
    assert len(labels) == 20 and all(len(label) <= 28 and label.endswith("…") for label in labels)
