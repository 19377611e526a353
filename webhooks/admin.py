"""Back office of webhooks (the tenant's admin role): endpoints with ping and secret rotation, and the delivery
log with its attempts, filters and a retry action. Every change goes through webhooks.services."""

from django import forms
from django.contrib import admin, messages

from backoffice.forms import input_clean
from backoffice.scoping import (
    HistoryAdmin,
    TenantRelatedListFilter,
    TenantScopedAdmin,
    request_tenant,
    sees_all_tenants,
)
from tenants.models import Tenant

from .inputs import clean_events, clean_url
from .models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .services import (
    delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_update,
    webhook_ping,
    webhook_secret_rotate,
)


class EndpointForm(forms.ModelForm):
    url = forms.CharField(max_length=2000, help_text="An https URL that answers 2xx to a signed POST.")
    events = forms.MultipleChoiceField(choices=[(name, name) for name in EVENT_TYPES], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "events", "description", "is_active")

    # The API's input rules (webhooks.inputs), so the admin refuses exactly what the API refuses, as form errors.
    def clean_url(self):
        return input_clean(clean_url, self.cleaned_data["url"])

    def clean_events(self):
        return input_clean(clean_events, list(self.cleaned_data["events"]))


def _secret_message(endpoint: WebhookEndpoint) -> str:
    return (
        f"Signing secret of {endpoint.url}: {endpoint.secret} — copy it now into the receiver's configuration: it is not "
        "shown again."
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = EndpointForm
    list_display = ("url", "tenant", "event_list", "is_active", "failing_since", "disabled_reason", "created_at")
    list_filter = ("is_active", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("url", "description")
    actions = ("send_ping", "rotate_secret")
    readonly_fields = ("failing_since", "disabled_at", "disabled_reason", "created_at", "updated_at")

    @admin.display(description="Events")
    def event_list(self, endpoint):
        return ", ".join(endpoint.events)

    def get_fields(self, request, obj=None):
        fields = ["url", "events", "description", "is_active"]
        if sees_all_tenants(request) and obj is None:
            fields.insert(0, "tenant")
        if obj is not None:
            fields += list(self.readonly_fields)
        return fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        fields = ["url", "events", "description", "is_active"]
        if sees_all_tenants(request) and obj is None:
            fields.insert(0, "tenant")
        return forms.modelform_factory(WebhookEndpoint, form=EndpointForm, fields=fields)

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.retry_webhookdelivery")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            webhook_endpoint_update(
                endpoint=obj, url=data["url"], events=data["events"], description=data["description"], is_active=data["is_active"]
            )
            return
        tenant: Tenant = data["tenant"] if sees_all_tenants(request) else request_tenant(request)
        created = webhook_endpoint_create(
            tenant=tenant, url=data["url"], events=data["events"], description=data["description"], is_active=data["is_active"]
        )
        for field in WebhookEndpoint._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False
        self.message_user(request, _secret_message(created), messages.WARNING)

    def changelist_view(self, request, extra_context=None):
        # SPEC: an endpoint disabled after days of failures is shown to the tenant's admins with the reason.
        if request.method == "GET":
            for endpoint in self.get_queryset(request).filter(is_active=False).exclude(disabled_reason="")[:10]:
                self.message_user(request, f"{endpoint.url}: {endpoint.disabled_reason}", messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Send a ping to the selected endpoints", permissions=["retry"])
    def send_ping(self, request, queryset):
        count = sum(1 for endpoint in queryset[:100] if webhook_ping(endpoint=endpoint))
        self.message_user(request, f"{count} ping(s) queued; see the delivery log.", messages.SUCCESS)

    @admin.action(description="Rotate the signing secret (the old one signs for 24 more hours)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset[:20]:
            self.message_user(request, _secret_message(webhook_secret_rotate(endpoint=endpoint)), messages.WARNING)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "status_code", "duration_ms", "error", "response_body")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(HistoryAdmin):
    list_display = (
        "id",
        "created_at",
        "tenant",
        "endpoint",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
    )
    list_filter = ("status", "event_type", ("endpoint", TenantRelatedListFilter), "tenant")
    list_select_related = ("endpoint", "tenant")
    search_fields = ("=message_id",)
    search_help_text = "An exact webhook-id (msg_...)."
    sortable_by = ("id", "created_at", "next_attempt_at")
    actions = ("retry_deliveries",)
    inlines = (WebhookAttemptInline,)
    fields = (
        "tenant",
        "endpoint",
        "message_id",
        "event_type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "give_up_at",
        "finished_at",
        "body",
    )

    def get_queryset(self, request):
        # Joined to the endpoint (an inner join): a delivery whose endpoint was deleted while it was being written
        # (the table keeps plain ids, see the model) is not shown; the sweeper removes it.
        return super().get_queryset(request).select_related("endpoint")

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.retry_webhookdelivery")

    @admin.action(description="Retry the selected deliveries now", permissions=["retry"])
    def retry_deliveries(self, request, queryset):
        count = 0
        for delivery in queryset[:1000]:
            delivery_retry(delivery=delivery)
            count += 1
        self.message_user(request, f"{count} deliver(ies) queued again, with the same webhook-id.", messages.SUCCESS)
