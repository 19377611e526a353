"""Tenant scoping of the back office: a staff user of tenant A cannot see, filter to, open by URL, autocomplete,
act on or export tenant B's rows; a superuser sees both."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from openpyxl import load_workbook

from books.models import Code
from core.models import Job
from tenants.models import Role
from tests.factories import CodeFactory, CouponBookFactory
from tests.helpers import logged_in, redemption_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants(tenant, other_tenant):
    mine = CouponBookFactory(tenant=tenant, name="Mine-Book")
    theirs = CouponBookFactory(tenant=other_tenant, name="Theirs-Book")
    return {
        "mine": mine,
        "theirs": theirs,
        "my_code": CodeFactory(book=mine, code="MINE-CODE"),
        "their_code": CodeFactory(book=theirs, code="THEIR-CODE"),
        "my_redemption": redemption_make(mine, order_ref="MINE-ORDER"),
        "their_redemption": redemption_make(theirs, order_ref="THEIR-ORDER"),
        "their_job": Job.objects.create(tenant=other_tenant, kind=Job.Kind.EXPORT, actor_type="system"),
    }


def test_changelists_show_only_the_own_tenant(client, tenant, two_tenants):
    logged_in(client, tenant, Role.ADMIN)
    pages = {
        "books": client.get(reverse("admin:books_couponbook_changelist")).content.decode(),
        "codes": client.get(reverse("admin:books_code_changelist")).content.decode(),
        "redemptions": client.get(reverse("admin:redemptions_redemption_changelist")).content.decode(),
    }
    assert "Mine-Book" in pages["books"] and "Theirs-Book" not in pages["books"]
    assert "MINE-CODE" in pages["codes"] and "THEIR-CODE" not in pages["codes"]
    assert "MINE-ORDER" in pages["redemptions"] and "THEIR-ORDER" not in pages["redemptions"]


def test_filter_choices_and_filtering_to_another_tenants_book(client, tenant, two_tenants):
    logged_in(client, tenant, Role.ADMIN)
    theirs = two_tenants["theirs"]
    codes = client.get(reverse("admin:books_code_changelist"))
    assert "Theirs-Book" not in codes.content.decode()  # not offered as a filter choice
    filtered = client.get(reverse("admin:books_code_changelist"), {"book__id__exact": theirs.pk}).content.decode()
    assert "THEIR-CODE" not in filtered
    redemptions = client.get(reverse("admin:redemptions_redemption_changelist"), {"book__id__exact": theirs.pk})
    assert "THEIR-ORDER" not in redemptions.content.decode()


def test_another_tenants_objects_by_url_answer_404(client, tenant, two_tenants):
    logged_in(client, tenant, Role.ADMIN)
    urls = [
        reverse("admin:books_couponbook_change", args=[two_tenants["theirs"].pk]),
        reverse("admin:books_code_change", args=[two_tenants["their_code"].pk]),
        reverse("admin:redemptions_redemption_change", args=[two_tenants["their_redemption"].pk]),
        reverse("admin:core_job_change", args=[two_tenants["their_job"].pk]),
        reverse("admin:books_couponbook_history", args=[two_tenants["theirs"].pk]),
        reverse("backoffice:job_progress", args=[two_tenants["their_job"].pk]),
        reverse("backoffice:job_download", args=[two_tenants["their_job"].pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    # ... and the own ones open.
    assert client.get(reverse("admin:books_couponbook_change", args=[two_tenants["mine"].pk])).status_code == 200


def test_autocomplete_offers_only_the_own_tenants_books(client, tenant, two_tenants):
    logged_in(client, tenant, Role.MARKETING)
    response = client.get(
        reverse("admin:autocomplete"), {"app_label": "books", "model_name": "code", "field_name": "book", "term": "Book"}
    )
    assert response.status_code == 200
    names = [item["text"] for item in response.json()["results"]]
    assert names == ["Mine-Book"]


def test_actions_never_touch_another_tenants_rows(client, tenant, two_tenants):
    logged_in(client, tenant, Role.ADMIN)
    their_code, their_redemption = two_tenants["their_code"], two_tenants["their_redemption"]
    client.post(
        reverse("admin:books_code_changelist"),
        {"action": "void_codes", "_selected_action": [their_code.pk], "post": "yes", "reason": "x"},
    )
    client.post(
        reverse("admin:redemptions_redemption_changelist"),
        {"action": "reverse_redemptions", "_selected_action": [their_redemption.pk], "post": "yes", "reason": "x"},
    )
    their_code.refresh_from_db()
    their_redemption.refresh_from_db()
    assert their_code.state == Code.State.FREE
    assert their_redemption.reversed_at is None


def test_generate_into_another_tenants_book_is_404(client, tenant, two_tenants):
    logged_in(client, tenant, Role.MARKETING)
    theirs = two_tenants["theirs"]
    before = Code.objects.filter(book=theirs).count()
    response = client.post(reverse("admin:books_couponbook_generate", args=[theirs.pk]), {"count": "3"})
    assert response.status_code == 404
    assert Code.objects.filter(book=theirs).count() == before


def test_export_holds_only_the_own_tenants_rows_even_when_filtered_to_theirs(client, tenant, two_tenants):
    logged_in(client, tenant, Role.ACCOUNTANT)
    everything = client.get(reverse("admin:redemptions_redemption_export"))
    sheet = load_workbook(io.BytesIO(everything.content), read_only=True)["Redemptions"]
    order_refs = [row[6] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert order_refs == ["MINE-ORDER"]
    theirs = client.get(reverse("admin:redemptions_redemption_export"), {"book__id__exact": two_tenants["theirs"].pk})
    sheet = load_workbook(io.BytesIO(theirs.content), read_only=True)["Redemptions"]
    assert "THEIR-ORDER" not in [row[6] for row in sheet.iter_rows(min_row=2, values_only=True)]


def test_new_book_gets_the_users_tenant_whatever_is_posted(client, tenant, other_tenant):
    from tenants.tests.test_admin_roles import BOOK_FORM

    logged_in(client, tenant, Role.MARKETING)
    client.post(reverse("admin:books_couponbook_add"), {**BOOK_FORM, "name": "Sneaky", "tenant": other_tenant.pk})
    from books.models import CouponBook

    assert CouponBook.objects.get(name="Sneaky").tenant == tenant


def test_staff_user_without_a_tenant_sees_nothing(client, two_tenants):
    user = get_user_model().objects.create_user("loner", password="x-Long-pass-1", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:books_couponbook_changelist")).status_code == 403


def test_superuser_sees_every_tenant(client, two_tenants):
    user = get_user_model().objects.create_superuser("root", password="x-Long-pass-1")
    client.force_login(user)
    page = client.get(reverse("admin:books_code_changelist")).content.decode()
    assert "MINE-CODE" in page and "THEIR-CODE" in page
    assert client.get(reverse("admin:books_couponbook_change", args=[two_tenants["theirs"].pk])).status_code == 200
