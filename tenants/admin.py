"""Back office for tenants (superusers), their staff and their API clients (a tenant's admin role).

Staff users are created through tenants.services.staff_user_create and moved between roles through
tenants.roles.membership_role_set, so a membership's role and the user's group never disagree. API clients are
issued through api_client_create (the secret is shown once, here) and revoked through api_client_revoke.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from backoffice.scoping import TenantScopedAdmin, request_tenant, sees_all_tenants
from core.exceptions import ApplicationError

from .inputs import clean_password
from .models import ApiClient, StaffMembership, Tenant
from .roles import membership_role_set
from .services import api_client_create, api_client_revoke, staff_user_create


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "timezone", "created_at")
    search_fields = ("name", "slug")

    def has_delete_permission(self, request, obj=None):
        return False  # a tenant's rows are history (redemptions are protected); nobody deletes one from here


class StaffAddForm(forms.ModelForm):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, help_text="At least 8 characters, not a common password.")

    class Meta:
        model = StaffMembership
        fields = ("role",)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username=username).exists():
            raise ValidationError("A user with this name exists already.")
        return username

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("username"):
            try:
                clean_password(data["password"], username=data["username"], email=data.get("email", ""))
            except ApplicationError as exc:
                self.add_error("password", exc.details["password"])
        return data


class StaffChangeForm(forms.ModelForm):
    is_active = forms.BooleanField(required=False, help_text="Untick to stop this user from logging in.")

    class Meta:
        model = StaffMembership
        fields = ("role",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["is_active"].initial = self.instance.user.is_active


@admin.register(StaffMembership)
class StaffMembershipAdmin(TenantScopedAdmin):
    list_display = ("user", "tenant", "role", "user_active", "created_at")
    list_filter = ("role", "tenant")
    list_select_related = ("user", "tenant")
    search_fields = ("user__username", "user__email")

    @admin.display(description="Active", boolean=True)
    def user_active(self, membership):
        return membership.user.is_active

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = StaffChangeForm if obj is not None else StaffAddForm
        fields = ["role"] + (["tenant"] if sees_all_tenants(request) and obj is None else [])
        return forms.modelform_factory(StaffMembership, form=base, fields=fields)

    def get_fields(self, request, obj=None):
        if obj is not None:
            return ["role", "is_active"]
        return (["tenant"] if sees_all_tenants(request) else []) + ["username", "email", "password", "role"]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate the user instead: their actions stay attributed in the history

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            membership_role_set(membership=obj, role=data["role"])
            if obj.user.is_active != data["is_active"]:
                obj.user.is_active = data["is_active"]
                obj.user.save(update_fields=["is_active"])
            return
        tenant = data["tenant"] if sees_all_tenants(request) else request_tenant(request)
        user = staff_user_create(
            tenant=tenant, username=data["username"], password=data["password"], role=data["role"], email=data.get("email", "")
        )
        created = StaffMembership.objects.get(user=user)
        for field in StaffMembership._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False


class ApiClientAddForm(forms.ModelForm):
    class Meta:
        model = ApiClient
        fields = ("name",)


@admin.register(ApiClient)
class ApiClientAdmin(TenantScopedAdmin):
    list_display = ("name", "client_id", "tenant", "is_active", "last_used_at", "created_at")
    list_filter = ("is_active", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("name", "=client_id")
    actions = ("revoke_clients",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        fields = ["name"] + (["tenant"] if sees_all_tenants(request) and obj is None else [])
        return forms.modelform_factory(ApiClient, form=ApiClientAddForm, fields=fields)

    def get_fields(self, request, obj=None):
        if obj is None:
            return (["tenant"] if sees_all_tenants(request) else []) + ["name"]
        return ["name", "client_id", "is_active", "last_used_at", "revoked_at", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["name", "client_id", "is_active", "last_used_at", "revoked_at", "created_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the client id stays in the redemptions it made

    def save_model(self, request, obj, form, change):
        if change:
            return
        tenant = form.cleaned_data["tenant"] if sees_all_tenants(request) else request_tenant(request)
        issued = api_client_create(tenant=tenant, name=form.cleaned_data["name"])
        for field in ApiClient._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.client, field.attname))
        obj._state.adding = False
        self.message_user(
            request,
            f"Client id: {issued.client.client_id} — secret: {issued.secret} — copy the secret now: it is stored only "
            "as a hash and is never shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API clients", permissions=["change"])
    def revoke_clients(self, request, queryset):
        revoked = 0
        for client in queryset.filter(is_active=True):
            api_client_revoke(client=client)
            revoked += 1
        self.message_user(request, f"{revoked} API client(s) revoked.", messages.SUCCESS)
