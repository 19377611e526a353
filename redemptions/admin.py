"""Back office for the redemption log: read-only rows, filters (book, period, user, reversed), a date hierarchy,
the reversal action (asks for a reason; redemption_reverse) and the Excel export (redemptions/exports.py)."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from backoffice.actions import RequiredReasonForm, confirmed_action
from backoffice.filters import PeriodFilter, ReversedFilter, UserIdFilter
from backoffice.money import money_text
from backoffice.scoping import (
    HistoryAdmin,
    TenantRelatedListFilter,
    request_tenant,
    sees_all_tenants,
    staff_actor,
)
from books.services.codes import redemption_reverse
from core.downloads import attachment_response
from core.models import Job
from tenants.models import Tenant

from .exports import ExportFile, export_request
from .models import Redemption
from .selectors import RedemptionFilters, redemptions_search


@admin.register(Redemption)
class RedemptionAdmin(HistoryAdmin):
    list_display = (
        "redeemed_at",
        "tenant",
        "code",
        "book",
        "user_id",
        "order_ref",
        "amount_shown",
        "discount_shown",
        "is_reversed",
    )
    list_filter = (("book", TenantRelatedListFilter), PeriodFilter, UserIdFilter, ReversedFilter, "tenant")
    list_select_related = ("code", "book", "tenant")
    search_fields = ("=order_ref", "=user_id")
    search_help_text = "An exact order reference or end-user id."
    date_hierarchy = "redeemed_at"
    sortable_by = ("redeemed_at", "amount_shown", "discount_shown")
    actions = ("reverse_redemptions", "export_selected")
    change_list_template = "admin/redemptions/redemption/change_list.html"
    # Every field of the log, in the model's order, all read-only (the reservation is an internal link).
    # Money as money: the amount and the discount with their currency (the currency row stays, for the record).
    fields = tuple(
        {"amount": "amount_shown", "discount": "discount_shown"}.get(field.name, field.name)
        for field in Redemption._meta.fields
        if field.name not in ("id", "reservation")
    )

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="Amount", ordering="amount")
    def amount_shown(self, redemption):
        return money_text(redemption.amount, redemption.currency)

    @admin.display(description="Discount", ordering="discount")
    def discount_shown(self, redemption):
        return money_text(redemption.discount, redemption.currency)

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
        # The action is posted to the changelist's own URL: its filters are in the query string.
        changelist = self.get_changelist_instance(request)
        across = request.POST.get("select_across") == "1"
        ids = None if across else tuple(sorted(int(pk) for pk in queryset.values_list("pk", flat=True)))
        return self.export_response(request, changelist, ids=ids)

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
        return self.export_response(request, changelist)

    def export_response(self, request, changelist, *, ids: tuple[int, ...] | None = None):
        back = HttpResponseRedirect(reverse("admin:redemptions_redemption_changelist"))
        tenant = self._export_tenant(request, changelist.get_queryset(request))
        if tenant is None:
            self.message_user(request, "Filter the list to one tenant before exporting.", messages.ERROR)
            return back
        filters = self.export_filters(request, changelist, ids=ids)
        if filters is None:
            self.message_user(request, "This list's filters cannot be exported; use the filters on the right.", messages.ERROR)
            return back
        outcome = export_request(tenant=tenant, filters=filters, actor=staff_actor(request))
        if isinstance(outcome, ExportFile):
            return attachment_response(outcome.content, filename=outcome.filename, content_type=outcome.content_type)
        assert isinstance(outcome, Job)
        self.message_user(
            request,
            f"{outcome.total:,} redemptions are being exported as job #{outcome.pk}; "
            "a download link appears here when the workbook is ready.",
        )
        return HttpResponseRedirect(reverse("admin:core_job_change", args=[outcome.pk]))

    def get_search_results(self, request, queryset, search_term):
        # The list's search and the export's are one rule (an exact order reference or end-user id).
        return redemptions_search(queryset, search_term), False

    def export_filters(self, request, changelist, *, ids: tuple[int, ...] | None = None) -> RedemptionFilters | None:
        """The list as filtered now (book, period, date hierarchy, user, reversal, search) as the filters an
        export stores; None when the query string holds a look-up they cannot carry (never a different set of rows)."""
        specs, _, remaining, _, _ = changelist.get_filters(request)
        values: dict = {"search": changelist.query.strip() or None, "ids": ids}
        since, until = [], []
        for spec in specs:
            if isinstance(spec, PeriodFilter):
                span = spec.bounds(spec.value() or "")
                if span is not None:
                    since.append(span[0])
                    until.append(span[1])
            elif isinstance(spec, UserIdFilter):
                values["user_id"] = spec.value or None
            elif isinstance(spec, ReversedFilter):
                values["reversed"] = {"yes": True, "no": False}.get(spec.value())
            elif isinstance(spec, TenantRelatedListFilter):  # the book
                if spec.lookup_val_isnull or len(spec.lookup_val or []) > 1:
                    return None
                values["book_id"] = int(spec.lookup_val[0]) if spec.lookup_val else None
        # What no list filter consumed: only the date hierarchy's bounds may be left.
        for key, found in remaining.items():
            bounds = found if isinstance(found, list) else [found]
            if key == f"{self.date_hierarchy}__gte":
                since += bounds
            elif key == f"{self.date_hierarchy}__lt":
                until += bounds
            else:
                return None
        values["since"] = max(since) if since else None
        values["until"] = min(until) if until else None
        return RedemptionFilters(**values)

    def _export_tenant(self, request, queryset) -> Tenant | None:
        if not sees_all_tenants(request):
            return request_tenant(request)
        # A superuser exports one tenant at a time (each workbook is in its tenant's time zone).
        tenant_ids = list(queryset.order_by().values_list("tenant_id", flat=True).distinct()[:2])
        if len(tenant_ids) != 1:
            return None
        return Tenant.objects.get(pk=tenant_ids[0])
