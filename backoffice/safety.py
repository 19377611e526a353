"""Bad input in the admin is a message or a form error, never a 500: for every ModelAdmin of the site, ours and
third-party ones alike (BackofficeConfig.ready hardens each registered admin with SafeAdminMixin).

- Changelist filters from the query string (`?redeemed_at__year=9999`, a date hierarchy's 9999-12-31) may name a
  value that exists for Python but not once moved into the tenant's time zone, or no SQL can hold: the query is
  compiled while the changelist is built, so such a value is Django's "invalid lookup" answer (a redirect with ?e=1)
  rather than a crash while the page renders. NUL bytes never get this far (core.middleware.NulByteMiddleware).
- JSON form fields (a book's product_ids) refuse a value nested too deeply for Python's decoder as a form error.
"""

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import models


class SafeChangeList(ChangeList):
    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as exc:  # e.g. the day after 9999-12-31 in the date hierarchy
            raise IncorrectLookupParameters(exc) from exc

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            queryset.query.sql_with_params()  # compile now: year bounds and field conversions run here
        except EmptyResultSet:
            pass
        except (OverflowError, ValueError, TypeError, ValidationError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset


class BoundedJSONFormField(forms.JSONField):
    """Django's JSON form field, with a value nested too deeply for the decoder (RecursionError) as a form error."""

    default_error_messages = {"too_deep": "This JSON is nested too deeply."}

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError(self.error_messages["too_deep"], code="too_deep") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


class SafeAdminMixin:
    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if changelist is ChangeList:
            return SafeChangeList
        return type(f"Safe{changelist.__name__}", (SafeChangeList, changelist), {})

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", BoundedJSONFormField)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


def admins_harden(site: admin.AdminSite) -> None:
    """Give every registered ModelAdmin the mixin (re-registering it as a subclass of itself)."""
    for model, model_admin in list(site._registry.items()):
        if isinstance(model_admin, SafeAdminMixin):
            continue
        admin_class = type(model_admin)
        site.unregister(model)
        site.register(model, type(admin_class.__name__, (SafeAdminMixin, admin_class), {"__module__": admin_class.__module__}))
