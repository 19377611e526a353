"""Admin actions that ask before they act (after contrib/admin/actions.py delete_selected): an intermediate page
listing what will change, with an optional form (a reason), then one service call per object."""

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from core.exceptions import ApplicationError

from .scoping import rendered, tenant_timezone

# Most objects one action run may touch: each is its own service call (and transaction).
ACTION_LIMIT = 1000
LISTED = 100


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=1000, required=False)


class RequiredReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=1000, required=True)


def confirmed_action(
    modeladmin,
    request,
    queryset,
    *,
    title: str,
    question: str,
    run: Callable[[object, dict], object],
    done_message: str,
    form_class: type[forms.Form] | None = None,
):
    """Show the confirmation page; on "yes", call `run(obj, cleaned_data)` for each object and report."""
    action = request.POST.get("action", "")
    selected = list(queryset[: ACTION_LIMIT + 1])
    if len(selected) > ACTION_LIMIT:
        modeladmin.message_user(
            request, f"Select at most {ACTION_LIMIT:,} rows for this action (narrow the list with a filter).", messages.ERROR
        )
        return None
    confirmed = request.POST.get("post") == "yes"
    form = form_class(request.POST if confirmed else None) if form_class else None
    if confirmed and (form is None or form.is_valid()):
        data = form.cleaned_data if form is not None else {}
        done, failed = 0, []
        for obj in selected:
            try:
                run(obj, data)
            except ApplicationError as exc:
                failed.append(f"{obj}: {exc.message}")
            else:
                done += 1
        if done:
            modeladmin.message_user(request, done_message.format(count=done), messages.SUCCESS)
        if failed:
            shown = "; ".join(failed[:10]) + (f" (and {len(failed) - 10} more)" if len(failed) > 10 else "")
            modeladmin.message_user(request, f"{len(failed)} not changed: {shown}", messages.ERROR)
        return None
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "objects": selected[:LISTED],
        "more": max(0, len(selected) - LISTED),
        "selected": selected,
        "count": len(selected),
        "form": form,
        "action": action,
        "opts": opts,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
    }
    with tenant_timezone(request):
        return rendered(TemplateResponse(request, "admin/backoffice/action_confirmation.html", context))
