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
