"""Back office for the redemption log: read-only rows, filters (book, period, user, reversed), a date hierarchy,
the reversal action (asks for a reason; redemption_reverse) and the Excel export (redemptions/exports.py)."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path, reverse

from backoffice.actions import RequiredReasonForm, confirmed_action
from backoffice.filters import PeriodFilter, ReversedFilter, UserIdFilter
from backoffice.paginator import CappedCountPaginator
from backoffice.scoping import (
    ReadOnlyAdminMixin,
    TenantRelatedListFilter,
    TenantScopedAdmin,
    request_tenant,
    sees_all_tenants,
    staff_actor,
)
from books.services.codes import redemption_reverse
from core.models import Job
from tenants.models import Tenant

from .exports import ExportFile, export_request
from .models import Redemption


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = (
        "redeemed_at",
        "tenant",
        "code",
        "book",
        "user_id",
        "order_ref",
        "amount",
        "discount",
        "currency",
        "is_reversed",
    )
    list_filter = (("book", TenantRelatedListFilter), PeriodFilter, UserIdFilter, ReversedFilter, "tenant")
    list_select_related = ("code", "book", "tenant")
    search_fields = ("=order_ref", "=user_id")
    search_help_text = "An exact order reference or end-user id."
    date_hierarchy = "redeemed_at"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    sortable_by = ("redeemed_at", "amount", "discount")
    actions = ("reverse_redemptions", "export_selected")
    change_list_template = "admin/redemptions/redemption/change_list.html"
    fields = (
        "tenant",
        "redeemed_at",
        "book",
        "code",
        "user_id",
        "order_ref",
        "product_id",
        "amount",
        "discount",
        "currency",
        "actor_type",
        "actor_id",
        "idempotency_key",
        "reversed_at",
        "reversal_reason",
        "reversed_by_type",
        "reversed_by_id",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="Reversed", boolean=True, ordering="reversed_at")
    def is_reversed(self, redemption):
        return redemption.reversed_at is not None

    def has_reverse_permission(self, request) -> bool:
        return request.user.has_perm("redemptions.reverse_redemption")

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm("redemptions.export_redemption")

    # --- reversal -----------------------------------------------------------------------------------------

    @admin.action(description="Reverse selected redemptions (refund)", permissions=["reverse"])
    def reverse_redemptions(self, request, queryset):
        actor = staff_actor(request)

        def run(redemption, data):
            redemption_reverse(tenant=redemption.tenant, redemption_id=redemption.pk, actor=actor, reason=data["reason"])

        return confirmed_action(
            self,
            request,
            queryset,
            title="Reverse redemptions",
            question="Each use goes back to its code; the redemption stays in the log, marked reversed with your "
            "reason. Why are they reversed?",
            run=run,
            done_message="{count} redemption(s) reversed.",
            form_class=RequiredReasonForm,
        )

    # --- Excel export -------------------------------------------------------------------------------------

    @admin.action(description="Export selected to Excel", permissions=["export"])
    def export_selected(self, request, queryset):
        return self.export_response(request, queryset)

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view), name="redemptions_redemption_export"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "has_export_permission": self.has_export_permission(request)}
        return super().changelist_view(request, extra_context)

    def export_view(self, request):
        """The changelist's rows as now filtered (book, period, user, reversed, search) as a workbook."""
        back = reverse("admin:redemptions_redemption_changelist")
        if not (self.has_view_permission(request) and self.has_export_permission(request)):
            self.message_user(request, "You may not export redemptions.", messages.ERROR)
            return HttpResponseRedirect(back)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(back)
        return self.export_response(request, changelist.get_queryset(request))

    def export_response(self, request, queryset):
        tenant = self._export_tenant(request, queryset)
        if tenant is None:
            self.message_user(request, "Filter the list to one tenant before exporting.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:redemptions_redemption_changelist"))
        outcome = export_request(tenant=tenant, queryset=queryset, actor=staff_actor(request))
        if isinstance(outcome, ExportFile):
            response = HttpResponse(outcome.content, content_type=outcome.content_type)
            response["Content-Disposition"] = f'attachment; filename="{outcome.filename}"'
            return response
        assert isinstance(outcome, Job)
        self.message_user(
            request,
            f"{outcome.total:,} redemptions are being exported as job #{outcome.pk}; "
            "a download link appears here when the workbook is ready.",
        )
        return HttpResponseRedirect(reverse("admin:core_job_change", args=[outcome.pk]))

    def _export_tenant(self, request, queryset) -> Tenant | None:
        if not sees_all_tenants(request):
            return request_tenant(request)
        # A superuser exports one tenant at a time (each workbook is in its tenant's time zone).
        tenant_ids = list(queryset.order_by().values_list("tenant_id", flat=True).distinct()[:2])
        if len(tenant_ids) != 1:
            return None
        return Tenant.objects.get(pk=tenant_ids[0])
