"""Tenant scoping of the admin: every queryset, foreign-key choice, filter, action and export of a staff user is
limited to their tenant (request.user.membership.tenant); a superuser sees every tenant.

Another tenant's object asked for by URL answers 404 (as in the API), never the admin's usual "perhaps it was
deleted" redirect, so a URL never confirms that an id exists elsewhere. Pages are rendered in the tenant's time
zone, so dates on screen, in filters and in the date hierarchy are the tenant's own.
"""

from contextlib import contextmanager

from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError
from tenants.models import Tenant

from .paginator import LargeTableAdminMixin


def user_tenant(user) -> Tenant | None:
    """The staff user's tenant; None for a superuser or a user without a membership."""
    if not getattr(user, "is_authenticated", False):
        return None
    membership = getattr(user, "membership", None)
    return membership.tenant if membership is not None else None


def request_tenant(request) -> Tenant | None:
    if not hasattr(request, "_backoffice_tenant"):
        request._backoffice_tenant = user_tenant(request.user)
    return request._backoffice_tenant


def sees_all_tenants(request) -> bool:
    return bool(request.user.is_superuser)


def tenant_scope(request, queryset, path: str = "tenant"):
    """The queryset narrowed to the request user's tenant (nothing at all for a staff user without one)."""
    if sees_all_tenants(request):
        return queryset
    tenant = request_tenant(request)
    if tenant is None:
        return queryset.none()
    return queryset.filter(**{path: tenant})


def staff_actor(request) -> Actor:
    return Actor.staff(request.user)


@contextmanager
def tenant_timezone(request):
    """Render in the tenant's time zone (a superuser keeps the site's)."""
    tenant = request_tenant(request)
    if tenant is None:
        yield
        return
    with timezone.override(tenant.zoneinfo):
        yield


def rendered(response):
    """Render a TemplateResponse now, while the tenant's time zone is still active."""
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    return response


def _has_tenant_field(model) -> bool:
    return any(field.name == "tenant" and field.is_relation for field in model._meta.fields)


class TenantRelatedListFilter(admin.RelatedFieldListFilter):
    """A foreign-key filter whose choices are the tenant's rows only (the default lists every tenant's)."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        limit = {}
        if not sees_all_tenants(request) and _has_tenant_field(field.related_model):
            tenant = request_tenant(request)
            limit = {"tenant": tenant} if tenant is not None else {"pk__in": []}
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=limit)


class TenantScopedAdmin(admin.ModelAdmin):
    """Base of every back-office ModelAdmin: scoping, 404 for other tenants' ids, tenant time zone, errors shown.

    `tenant_path` is the lookup from the model to its tenant.
    """

    tenant_path = "tenant"

    # --- scoping ------------------------------------------------------------------------------------------

    def get_queryset(self, request):
        return tenant_scope(request, super().get_queryset(request), self.tenant_path)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if related is Tenant and not sees_all_tenants(request):
            tenant = request_tenant(request)
            kwargs["queryset"] = Tenant.objects.filter(pk=tenant.pk if tenant else None)
        elif _has_tenant_field(related) and "queryset" not in kwargs:
            kwargs["queryset"] = tenant_scope(request, related._default_manager.all())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not sees_all_tenants(request) and _has_tenant_field(self.model):
            exclude.append("tenant")  # set from the user's membership on save
        return exclude

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not sees_all_tenants(request):
            fields = [field for field in fields if field != "tenant"]
        return fields

    def get_list_display(self, request):
        display = super().get_list_display(request)
        if not sees_all_tenants(request):
            display = [field for field in display if field != "tenant"]
        return display

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if not sees_all_tenants(request):
            filters = [item for item in filters if item != "tenant"]
        return filters

    def save_model(self, request, obj, form, change):
        if not change and not sees_all_tenants(request) and _has_tenant_field(self.model):
            obj.tenant = request_tenant(request)
        super().save_model(request, obj, form, change)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Unknown or another tenant's: 404, as the API answers (SPEC: never confirm another tenant's ids).
        raise Http404(f"No {opts.verbose_name} with this id.")

    def has_module_permission(self, request):
        if not sees_all_tenants(request) and request_tenant(request) is None:
            return False
        return super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        if not sees_all_tenants(request) and request_tenant(request) is None:
            return False
        return super().has_view_permission(request, obj)

    # --- time zone and errors -----------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        with tenant_timezone(request):
            return rendered(super().changelist_view(request, extra_context))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with tenant_timezone(request):
            try:
                return rendered(super().changeform_view(request, object_id, form_url, extra_context))
            except ApplicationError as exc:
                # A rule of a service refused the save (the whole request's transaction was rolled back).
                self.message_user(request, exc.message, messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())

    def history_view(self, request, object_id, extra_context=None):
        with tenant_timezone(request):
            return rendered(super().history_view(request, object_id, extra_context))


class ReadOnlyAdminMixin:
    """For logs and history: viewable, never added, changed or deleted through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class HistoryAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, TenantScopedAdmin):
    """A tenant's log or history of millions of rows (reservations, events, redemptions, webhook deliveries):
    read-only, scoped to the tenant, never counted in full."""
