"""The back office's role matrix (tenants/roles.py), rule by rule, through the admin pages a user would use."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from books.models import Code, CouponBook
from redemptions.models import Redemption
from tenants.models import ApiClient, Role, StaffMembership
from tests.factories import CodeFactory
from tests.helpers import logged_in, redemption_make, staff_user

pytestmark = pytest.mark.django_db

BOOK_FORM = {
    "name": "Spring sale",
    "description": "",
    "status": "active",
    "discount_type": "percent",
    "discount_value": "15",
    "currency": "",
    "product_ids": "",
    "valid_from_0": "",
    "valid_from_1": "",
    "valid_until_0": "",
    "valid_until_1": "",
    "max_codes_per_user": "1",
    "max_redemptions_per_user": "1",
    "uses_per_code": "1",
    "requires_assignment": "on",
    "lock_ttl_seconds": "300",
}


# The README's role matrix ("Back office", Roles), written out permission by permission: who may do what.
VIEW_ALL = {
    "books.view_couponbook",  # see books,
    "books.view_code",  # codes,
    "books.view_event",  # events,
    "redemptions.view_redemption",  # redemptions
    "core.view_job",  # and jobs
}
MANAGE_BOOKS = {"books.add_couponbook", "books.change_couponbook"}  # create and change books
MANAGE_CODES = {"books.add_code", "books.change_code", "books.view_reservation"}  # generate, upload, void, release, distribute
EXPORT = {"redemptions.export_redemption"}
REVERSE = {"redemptions.reverse_redemption"}
MANAGE_TENANT = {
    "tenants.view_staffmembership",
    "tenants.add_staffmembership",
    "tenants.change_staffmembership",
    "tenants.view_apiclient",
    "tenants.add_apiclient",
    "tenants.change_apiclient",
}
MANAGE_WEBHOOKS = {  # manage webhook endpoints (deleting one removes a subscription, not history), see deliveries, retry
    "webhooks.view_webhookendpoint",
    "webhooks.add_webhookendpoint",
    "webhooks.change_webhookendpoint",
    "webhooks.delete_webhookendpoint",
    "webhooks.view_webhookdelivery",
    "webhooks.retry_webhookdelivery",
}
README_ROLE_MATRIX = {
    "marketing": VIEW_ALL | MANAGE_BOOKS | MANAGE_CODES,
    "accountant": VIEW_ALL | EXPORT,
    "admin": VIEW_ALL | MANAGE_BOOKS | MANAGE_CODES | EXPORT | REVERSE | MANAGE_TENANT | MANAGE_WEBHOOKS,
}


def test_role_groups_exist_after_migrate_with_exactly_the_readme_matrix():
    assert set(Role.values) == set(README_ROLE_MATRIX)
    for role, wanted in README_ROLE_MATRIX.items():
        group = Group.objects.get(name=role)
        have = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert have == wanted, role  # no delete_ permission on any history row: it is kept


# --- books ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MARKETING, Role.ADMIN])
def test_marketing_and_admin_create_a_book_in_their_tenant(client, tenant, role):
    logged_in(client, tenant, role)
    response = client.post(reverse("admin:books_couponbook_add"), BOOK_FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    book = CouponBook.objects.get(name="Spring sale")
    assert book.tenant == tenant
    assert book.discount_value == 15


def test_accountant_cannot_add_a_book(client, tenant):
    logged_in(client, tenant, Role.ACCOUNTANT)
    assert client.get(reverse("admin:books_couponbook_add")).status_code == 403
    assert client.post(reverse("admin:books_couponbook_add"), BOOK_FORM).status_code == 403
    assert not CouponBook.objects.filter(name="Spring sale").exists()


def test_accountant_cannot_change_a_book_but_may_view_it(client, book):
    logged_in(client, book.tenant, Role.ACCOUNTANT)
    url = reverse("admin:books_couponbook_change", args=[book.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()  # view-only page
    response = client.post(url, {**BOOK_FORM, "name": "Renamed"})
    assert response.status_code == 403
    book.refresh_from_db()
    assert book.name != "Renamed"


def test_marketing_changes_a_book_through_the_service(client, book):
    logged_in(client, book.tenant, Role.MARKETING)
    url = reverse("admin:books_couponbook_change", args=[book.pk])
    response = client.post(url, {**BOOK_FORM, "name": "Renamed", "status": "paused"})
    assert response.status_code == 302
    book.refresh_from_db()
    assert (book.name, book.status) == ("Renamed", "paused")


@pytest.mark.parametrize("role", list(Role))
def test_nobody_deletes_a_book(client, book, role):
    logged_in(client, book.tenant, role)
    response = client.post(reverse("admin:books_couponbook_delete", args=[book.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert CouponBook.objects.filter(pk=book.pk).exists()


# --- codes ----------------------------------------------------------------------------------------------------


def test_accountant_cannot_generate_codes(client, book):
    logged_in(client, book.tenant, Role.ACCOUNTANT)
    client.post(reverse("admin:books_couponbook_generate", args=[book.pk]), {"count": "5"})
    assert Code.objects.filter(book=book).count() == 0
    assert client.get(reverse("admin:books_code_import")).status_code == 403


def test_accountant_cannot_void_a_code(client, book):
    code = CodeFactory(book=book)
    logged_in(client, book.tenant, Role.ACCOUNTANT)
    client.post(reverse("admin:books_code_changelist"), {"action": "void_codes", "_selected_action": [code.pk], "post": "yes"})
    code.refresh_from_db()
    assert code.state == Code.State.FREE


def test_marketing_voids_a_code(client, book):
    code = CodeFactory(book=book)
    logged_in(client, book.tenant, Role.MARKETING)
    client.post(
        reverse("admin:books_code_changelist"),
        {"action": "void_codes", "_selected_action": [code.pk], "post": "yes", "reason": "leaked"},
    )
    code.refresh_from_db()
    assert code.state == Code.State.VOIDED


# --- redemptions ----------------------------------------------------------------------------------------------


def _reverse(client, redemption):
    return client.post(
        reverse("admin:redemptions_redemption_changelist"),
        {"action": "reverse_redemptions", "_selected_action": [redemption.pk], "post": "yes", "reason": "refund"},
    )


@pytest.mark.parametrize("role", [Role.MARKETING, Role.ACCOUNTANT])
def test_marketing_and_accountant_cannot_reverse_a_redemption(client, book, role):
    redemption = redemption_make(book)
    logged_in(client, book.tenant, role)
    _reverse(client, redemption)
    redemption.refresh_from_db()
    assert redemption.reversed_at is None


def test_admin_reverses_a_redemption(client, book):
    redemption = redemption_make(book)
    logged_in(client, book.tenant, Role.ADMIN)
    _reverse(client, redemption)
    redemption.refresh_from_db()
    assert redemption.reversed_at is not None
    assert redemption.reversal_reason == "refund"


@pytest.mark.parametrize("role", list(Role))
def test_every_role_views_redemptions(client, book, role):
    redemption_make(book, order_ref="ORDER-1")
    logged_in(client, book.tenant, role)
    page = client.get(reverse("admin:redemptions_redemption_changelist"))
    assert page.status_code == 200
    assert "ORDER-1" in page.content.decode()


@pytest.mark.parametrize("role,allowed", [(Role.MARKETING, False), (Role.ACCOUNTANT, True), (Role.ADMIN, True)])
def test_only_accountant_and_admin_export(client, book, role, allowed):
    redemption_make(book)
    logged_in(client, book.tenant, role)
    response = client.get(reverse("admin:redemptions_redemption_export"))
    if allowed:
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    else:
        assert response.status_code == 302
        assert "Export to Excel" not in client.get(reverse("admin:redemptions_redemption_changelist")).content.decode()


@pytest.mark.parametrize("role", list(Role))
def test_nobody_changes_or_deletes_a_redemption(client, book, role):
    redemption = redemption_make(book)
    logged_in(client, book.tenant, role)
    assert client.post(reverse("admin:redemptions_redemption_delete", args=[redemption.pk]), {"post": "yes"}).status_code == 403
    assert Redemption.objects.filter(pk=redemption.pk).exists()


# --- staff and API clients ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MARKETING, Role.ACCOUNTANT])
def test_marketing_and_accountant_cannot_manage_staff_or_api_clients(client, tenant, role):
    logged_in(client, tenant, role)
    assert client.get(reverse("admin:tenants_staffmembership_changelist")).status_code == 403
    assert client.get(reverse("admin:tenants_apiclient_changelist")).status_code == 403
    assert client.get(reverse("admin:tenants_tenant_changelist")).status_code == 403


def test_admin_creates_a_staff_user_in_the_role_group(client, tenant):
    logged_in(client, tenant, Role.ADMIN)
    response = client.post(
        reverse("admin:tenants_staffmembership_add"),
        {"username": "new-accountant", "email": "", "password": "Another-pass-42", "role": "accountant"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    membership = StaffMembership.objects.get(user__username="new-accountant")
    assert membership.tenant == tenant
    assert list(membership.user.groups.values_list("name", flat=True)) == ["accountant"]


def test_admin_moves_a_staff_user_to_another_role(client, tenant):
    user = staff_user(tenant, Role.MARKETING, username="mover")
    logged_in(client, tenant, Role.ADMIN)
    url = reverse("admin:tenants_staffmembership_change", args=[user.membership.pk])
    assert client.post(url, {"role": "accountant", "is_active": "on"}).status_code == 302
    assert StaffMembership.objects.get(user=user).role == "accountant"
    assert list(user.groups.values_list("name", flat=True)) == ["accountant"]


def test_admin_issues_an_api_client_and_sees_the_secret_once(client, tenant):
    logged_in(client, tenant, Role.ADMIN)
    response = client.post(reverse("admin:tenants_apiclient_add"), {"name": "Shop checkout"}, follow=True)
    api_client = ApiClient.objects.get(name="Shop checkout")
    assert api_client.tenant == tenant
    assert api_client.client_id in response.content.decode()
    assert "never shown again" in response.content.decode()


def test_tenant_admin_cannot_reach_tenants_or_users(client, tenant):
    logged_in(client, tenant, Role.ADMIN)
    assert client.get(reverse("admin:tenants_tenant_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


@pytest.mark.parametrize("role,allowed", [(Role.MARKETING, True), (Role.ACCOUNTANT, False), (Role.ADMIN, True)])
def test_reservations_are_for_marketing_and_admin(client, tenant, role, allowed):
    logged_in(client, tenant, role)
    assert client.get(reverse("admin:books_reservation_changelist")).status_code == (200 if allowed else 403)


@pytest.mark.parametrize("role", list(Role))
def test_every_role_sees_events_jobs_and_the_dashboard(client, tenant, role):
    logged_in(client, tenant, role)
    assert client.get(reverse("admin:books_event_changelist")).status_code == 200
    assert client.get(reverse("admin:core_job_changelist")).status_code == 200
    assert 'id="dashboard"' in client.get(reverse("admin:index")).content.decode()
