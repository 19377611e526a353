"""Back office for coupon books and codes: every write goes through the same services as the API.

Books: a changelist with usage counts (one query), a book page with stats, a chart and the generate, upload and
distribute forms. Codes: a changelist built for millions of rows (capped count, exact search, indexed filters, ordering on
the (tenant, code) unique index) with confirmed actions: void, unassign, release reservations.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from import_export.admin import ImportMixin

from backoffice.actions import ReasonForm, confirmed_action
from backoffice.charts import Bar, bar_chart_svg
from backoffice.forms import input_clean
from backoffice.money import money_lines, money_text
from backoffice.paginator import LargeTableAdminMixin
from backoffice.scoping import (
    HistoryAdmin,
    TenantRelatedListFilter,
    TenantScopedAdmin,
    request_tenant,
    sees_all_tenants,
    staff_actor,
    tenant_scope,
)
from core.exceptions import ApplicationError
from core.models import Job
from core.transactions import deadlock_retried
from tenants.models import Tenant

from .code_upload import (
    CodeConfirmImportForm,
    CodeCSV,
    CodeImportForm,
    CodeUploadResource,
    CodeXLSX,
    dataset_code_strings,
    preview_file_remove,
)
from .inputs import clean_currency, clean_moment, clean_product_ids, normalize_code
from .models import Code, CouponBook, Event, Reservation
from .parsers import upload_inspect
from .selectors import book_limits_usage, book_stats, code_history
from .services.books import EDITABLE_FIELDS, book_archive, book_create, book_save_check, book_update
from .services.code_creation import CreationResult, generation_request, upload_file_request, upload_request
from .services.codes import code_unassign, code_void, reservations_release
from .services.distribution import distribution_file_request, result_csv
from .usage import books_with_usage, discount_given, redemptions_per_day


def job_url(job: Job) -> str:
    return reverse("admin:core_job_change", args=[job.pk])


class GenerateCodesForm(forms.Form):
    count = forms.IntegerField(
        min_value=1,
        max_value=settings.COUPONS["MAX_CODES_PER_REQUEST"],
        help_text="Above 10,000 codes the generation runs as a job.",
    )
    pattern = forms.CharField(
        required=False, max_length=64, help_text="# a digit, ? a letter, * any symbol of the charset; default 10 *."
    )
    charset = forms.CharField(required=False, max_length=128, help_text="Symbols for *; default without look-alikes.")


class ProductIdsField(forms.CharField):
    """The eligible product ids as marketers type them, comma-separated ("SKU-1, SKU-2"), not as JSON; cleaned
    into the list the book stores (blanks dropped, repeats once); the form then applies the API's rule to it
    (books.inputs.clean_product_ids)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Comma-separated product ids, e.g. SKU-1, SKU-2. Empty: every product.")
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 80}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value) -> list[str]:
        text = super().to_python(value)
        ids = (item.strip() for item in text.replace("\n", ",").split(","))
        return list(dict.fromkeys(item for item in ids if item))


class CouponBookForm(forms.ModelForm):
    """The book's fields as the model's form types them, plus the input rules the API applies (books.inputs); the
    product ids as comma-separated text rather than JSON."""

    product_ids = ProductIdsField(label="Product ids")

    class Meta:
        model = CouponBook
        fields = EDITABLE_FIELDS

    def clean_currency(self):
        return input_clean(clean_currency, self.cleaned_data["currency"])

    def clean_product_ids(self):
        return input_clean(clean_product_ids, self.cleaned_data["product_ids"])

    def clean_valid_from(self):
        value = self.cleaned_data["valid_from"]
        return value and input_clean(clean_moment, value, field="valid_from")

    def clean_valid_until(self):
        value = self.cleaned_data["valid_until"]
        return value and input_clean(clean_moment, value, field="valid_until")


class DistributeForm(forms.Form):
    file = forms.FileField(
        help_text="CSV or XLSX: end-user ids in the column headed user_id (or a single column). "
        "Above 10,000 users the distribution runs as a job."
    )


# --- Books --------------------------------------------------------------------------------------------------


def usage_column(annotation: str, description: str):
    """A changelist column showing one usage figure that books_with_usage annotates, sortable by it."""

    @admin.display(description=description, ordering=annotation)
    def column(self, book):
        return getattr(book, annotation)

    return column


@admin.register(CouponBook)
class CouponBookAdmin(TenantScopedAdmin):
    form = CouponBookForm
    list_display = (
        "name",
        "tenant",
        "status",
        "discount",
        "codes_total",
        "codes_free",
        "codes_assigned",
        "codes_redeemed",
        "redemptions_count",
        "discount_given",
        "created_at",
    )
    list_filter = ("status", "discount_type", "requires_assignment", ("created_at", admin.DateFieldListFilter), "tenant")
    list_select_related = ("tenant",)
    search_fields = ("name", "description")
    ordering = ("-created_at",)
    actions = ("activate_books", "pause_books", "archive_books")
    change_form_template = "admin/books/couponbook/change_form.html"
    fieldsets = (
        (None, {"fields": ("tenant", "name", "description", "status")}),
        ("Discount", {"fields": ("discount_type", "discount_value", "currency", "product_ids")}),
        ("Validity", {"fields": ("valid_from", "valid_until")}),
        (
            "Limits",
            {
                "fields": (
                    "max_codes_per_user",
                    "max_redemptions_per_user",
                    "uses_per_code",
                    "requires_assignment",
                    "lock_ttl_seconds",
                )
            },
        ),
        (
            "Campaign limits",
            {
                "description": "All optional: empty means none. Amounts are in the book's currency, which a budget needs.",
                "fields": ("max_redemptions", "budget_amount", "min_order_amount", "max_discount_amount"),
            },
        ),
    )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if sees_all_tenants(request):
            return fieldsets
        return [(name, {**opts, "fields": [f for f in opts["fields"] if f != "tenant"]}) for name, opts in fieldsets]

    def get_queryset(self, request):
        books = super().get_queryset(request)
        # The usage counts are for the list only: the book page has its own stats, and the autocomplete needs none.
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "books_couponbook_changelist":
            books = books_with_usage(books)
        return books

    def has_delete_permission(self, request, obj=None):
        return False  # books are archived (book_archive), never deleted: their history stays

    @admin.display(description="Discount", ordering="discount_value")
    def discount(self, book):
        if book.discount_type == CouponBook.DiscountType.PERCENT:
            return f"{book.discount_value.normalize():f}%"
        return money_text(book.discount_value, book.currency)

    # The usage figures books_with_usage annotates, shown and sortable as columns.
    codes_total = usage_column("codes_total", "Codes")
    codes_free = usage_column("codes_free", "Free")
    codes_assigned = usage_column("codes_assigned", "Assigned")
    codes_redeemed = usage_column("codes_redeemed", "Used up")
    redemptions_count = usage_column("redemptions_count", "Redemptions")

    @admin.display(description="Discount given")  # per currency, so no single order to sort by
    def discount_given(self, book):
        return money_lines(discount_given(book))

    # --- saving through the services ----------------------------------------------------------------------

    def _book_values(self, request, obj, form, change) -> tuple[Tenant, dict]:
        """The book's tenant and the values to save: every editable field on create, the changed ones on change."""
        values = {field: form.cleaned_data[field] for field in EDITABLE_FIELDS if field in form.cleaned_data}
        if change:
            return obj.tenant, {field: values[field] for field in form.changed_data if field in values}
        tenant = (form.cleaned_data.get("tenant") or obj.tenant) if sees_all_tenants(request) else request_tenant(request)
        return tenant, values

    def _book_save(self, request, obj, form, change) -> CouponBook:
        tenant, values = self._book_values(request, obj, form, change)
        if change:
            return book_update(book=obj, **values) if values else obj
        return book_create(tenant=tenant, **values)

    def get_form(self, request, obj=None, change=False, **kwargs):
        """The form asks the services' own check (book_save_check, which writes nothing) while it validates.

        So a rule that only the service knows (uses_per_code below a code's redemptions, say) comes back as an
        error on the form, with what the user typed kept, instead of a message over a reloaded, emptied page.
        """
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ServiceCheckedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                if self.errors:
                    return cleaned
                try:
                    tenant, values = model_admin._book_values(request, self.instance, self, change)
                    if not change or values:
                        book_save_check(tenant=tenant, book=self.instance if change else None, values=values)
                except ApplicationError as exc:
                    field = exc.details.get("field")
                    self.add_error(field if field in self.fields else None, exc.message)
                return cleaned

        return ServiceCheckedForm

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The admin's own transaction is the outermost one around book_update: a limit changed at a campaign's end
        # may deadlock with recounting uses, and the victim runs again whole (core/transactions.py).
        return deadlock_retried(super().changeform_view)(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        book = self._book_save(request, obj, form, change)
        for field in CouponBook._meta.concrete_fields:
            setattr(obj, field.attname, getattr(book, field.attname))
        obj._state.adding = False

    # --- actions ------------------------------------------------------------------------------------------

    def _status_set(self, request, queryset, status: str, label: str) -> None:
        done = 0
        for book in queryset:
            try:
                book_update(book=book, status=status)
            except ApplicationError as exc:
                self.message_user(request, f"{book}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} book(s) {label}.", messages.SUCCESS)

    @admin.action(description="Activate selected books", permissions=["change"])
    def activate_books(self, request, queryset):
        self._status_set(request, queryset, CouponBook.Status.ACTIVE, "activated")

    @admin.action(description="Pause selected books", permissions=["change"])
    def pause_books(self, request, queryset):
        self._status_set(request, queryset, CouponBook.Status.PAUSED, "paused")

    @admin.action(description="Archive selected books", permissions=["change"])
    def archive_books(self, request, queryset):
        def run(book, data):
            book_archive(book=book)

        return confirmed_action(
            self,
            request,
            queryset,
            title="Archive coupon books",
            question="Archived books hand out and redeem no code any more; their codes and history stay. "
            "A book that never had a code is deleted instead.",
            run=run,
            done_message="{count} book(s) archived.",
        )

    # --- the book page: stats, chart, generate and upload -------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/generate/",
                self.admin_site.admin_view(self.generate_view),
                name="books_couponbook_generate",
            ),
            path(
                "<path:object_id>/distribute/",
                self.admin_site.admin_view(self.distribute_view),
                name="books_couponbook_distribute",
            ),
        ] + super().get_urls()

    def has_codes_add_permission(self, request) -> bool:
        return request.user.has_perm("books.add_code")

    def has_distribute_permission(self, request) -> bool:
        # Handing codes to users is changing codes (marketing, admin), as assigning one is in the API.
        return request.user.has_perm("books.change_code")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        book = self.get_object(request, object_id)
        if book is not None:
            stats = book_stats(book=book, per_day=False)  # the page draws its own 30-day chart
            series = redemptions_per_day(tenant=book.tenant, book=book)
            extra_context.update(
                stats=stats,
                limits=book_limits_usage(book=book),
                chart=bar_chart_svg(
                    [Bar(label=f"{row['day']:%d %b}", value=row["redemptions"]) for row in series],
                    title=f"Redemptions per day, last {len(series)} days ({book.tenant.timezone})",
                ),
                can_add_codes=self.has_codes_add_permission(request) and book.status != CouponBook.Status.ARCHIVED,
                generate_form=GenerateCodesForm(),
                generate_url=reverse("admin:books_couponbook_generate", args=[book.pk]),
                upload_url=reverse("admin:books_code_import") + f"?book={book.pk}",
                can_distribute=self.has_distribute_permission(request) and book.status == CouponBook.Status.ACTIVE,
                distribute_form=DistributeForm(),
                distribute_url=reverse("admin:books_couponbook_distribute", args=[book.pk]),
                codes_url=reverse("admin:books_code_changelist") + f"?book__id__exact={book.pk}",
                redemptions_url=reverse("admin:redemptions_redemption_changelist") + f"?book__id__exact={book.pk}",
                jobs=Job.objects.filter(book=book).order_by("-created_at")[:5],
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _book_page_form_run(self, request, object_id, permitted, refusal: str, form_class, failure: str, run):
        """A form posted from the book page (generate, distribute): the book within the user's scope, then the
        permission, the form and the service's refusal, each sent back to the book page as a message; otherwise
        `run(book, cleaned_data)` answers."""
        book = get_object_or_404(tenant_scope(request, CouponBook.objects.select_related("tenant")), pk=object_id)
        back = HttpResponseRedirect(reverse("admin:books_couponbook_change", args=[book.pk]))
        if not permitted(request):
            self.message_user(request, refusal, messages.ERROR)
            return back
        if request.method != "POST":
            return back
        form = form_class(request.POST, request.FILES)
        if not form.is_valid():
            errors = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in form.errors.items())
            self.message_user(request, f"{failure}: {errors}", messages.ERROR)
            return back
        try:
            return run(book, form.cleaned_data)
        except ApplicationError as exc:
            self.message_user(request, f"{failure}: {exc.message}", messages.ERROR)
            return back

    def generate_view(self, request, object_id):
        def generate(book, data):
            pattern, charset = data["pattern"] or None, data["charset"] or None
            outcome = generation_request(
                book=book, count=data["count"], pattern=pattern, charset=charset, actor=staff_actor(request)
            )
            return creation_response(self, request, outcome, book=book, verb="Generated")

        permitted, refusal = self.has_codes_add_permission, "You may not add codes."
        return self._book_page_form_run(request, object_id, permitted, refusal, GenerateCodesForm, "Not generated", generate)

    def distribute_view(self, request, object_id):
        """Distribute to an uploaded list: a small one answers the CSV at once, a large one goes to its job's page
        (progress bar, then the CSV's download link)."""

        def distribute(book, data):
            upload = data["file"]
            outcome = distribution_file_request(book=book, file=upload, filename=upload.name or "", actor=staff_actor(request))
            if isinstance(outcome, Job):
                what = f"{outcome.total:,} users are" if outcome.total else "The file is"
                self.message_user(
                    request, f"{what} being served as job #{outcome.pk}; this page shows its progress, then the CSV to download."
                )
                return HttpResponseRedirect(job_url(outcome))
            response = HttpResponse(result_csv(outcome), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="distribution-book-{book.pk}.csv"'
            return response

        permitted, refusal = self.has_distribute_permission, "You may not distribute codes."
        return self._book_page_form_run(request, object_id, permitted, refusal, DistributeForm, "Not distributed", distribute)


def creation_response(modeladmin, request, outcome: CreationResult | Job, *, book: CouponBook, verb: str):
    """After generate or upload: a job goes to its progress page; a done request back to the book's codes."""
    if isinstance(outcome, Job):
        what = f"{outcome.total:,} codes are" if outcome.total else "The file is"
        modeladmin.message_user(request, f"{what} being processed as job #{outcome.pk}; this page shows its progress.")
        return HttpResponseRedirect(job_url(outcome))
    text = f"{verb} {outcome.created:,} code(s) in “{book}”."
    if outcome.skipped_count:
        text += f" {outcome.skipped_count:,} duplicate(s) skipped."
    modeladmin.message_user(request, text, messages.SUCCESS)
    for warning in outcome.warnings:
        modeladmin.message_user(request, warning, messages.WARNING)
    return HttpResponseRedirect(reverse("admin:books_code_changelist") + f"?book__id__exact={book.pk}")


# --- Codes --------------------------------------------------------------------------------------------------


class CodeStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return Code.State.choices

    def queryset(self, request, queryset):
        if self.value() in Code.State.values:
            return queryset.filter(state=self.value())
        return queryset


@admin.register(Code)
class CodeAdmin(LargeTableAdminMixin, ImportMixin, TenantScopedAdmin):
    list_display = ("code", "book", "state", "user_id", "redeemed_count", "max_uses", "assigned_at", "expires_at", "created_at")
    # Both filters are served by indexes: (book, state), and (tenant, code) for the tenant-wide list.
    list_filter = (CodeStateFilter, ("book", TenantRelatedListFilter))
    list_select_related = ("book",)
    search_fields = ("code",)  # exact match only, see get_search_results
    search_help_text = "An exact code (any case) or an exact end-user id."
    # (tenant_id, code) is the unique constraint's index: the page is read straight off it, in order, and the
    # ordering is already total (no "-pk" tiebreaker that would force a sort of every matching row).
    ordering = ("tenant_id", "code")
    sortable_by = ("code",)
    list_per_page = 100
    raw_id_fields = ("book",)
    actions = ("void_codes", "unassign_codes", "release_reservations")
    readonly_fields = ("history",)
    # django-import-export: upload of codes (CSV, XLSX) with its preview; the confirm step calls upload_request.
    import_formats = [CodeCSV, CodeXLSX]  # bounded, streaming readers (books.parsers), as in the API
    resource_classes = [CodeUploadResource]
    import_form_class = CodeImportForm
    confirm_form_class = CodeConfirmImportForm
    import_template_name = "admin/books/code/import.html"

    def get_fields(self, request, obj=None):
        fields = ["code", "book", "state", "user_id", "assigned_at", "redeemed_count", "max_uses", "expires_at", "created_at"]
        if sees_all_tenants(request):
            fields.insert(0, "tenant")
        return fields + ["history"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)  # a code changes only through the actions (the services)

    def has_add_permission(self, request):
        return False  # codes arrive by generation or upload, from the book page

    def has_delete_permission(self, request, obj=None):
        return False  # a leaked code is voided; its history stays

    def get_search_results(self, request, queryset, search_term):
        """Exact look-ups only, each on an index: the code normalised (strip, upper) or the end-user id."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(code=normalize_code(term)) | queryset.filter(user_id=term), False

    @admin.display(description="History")
    def history(self, code):
        events = list(code_history(code=code)[:200])
        if not events:
            return "No event yet (codes created in bulk are dated by their created time)."
        rows = format_html(
            "".join(["<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"] * len(events)),
            *[
                value
                for event in events
                for value in (
                    f"{event.created_at:%Y-%m-%d %H:%M:%S}",
                    event.get_kind_display(),
                    event.user_id,
                    f"{event.actor_type}:{event.actor_id}",
                )
            ],
        )
        return format_html("<table><tr><th>When</th><th>What</th><th>User</th><th>By</th></tr>{}</table>", rows)

    # --- actions, each through its service, after a confirmation page -------------------------------------

    def _codes_action(self, request, queryset, service, title: str, question: str, done: str, **form):
        """Ask, then run `service` on each selected code as the staff user (with the confirmation form's fields:
        `form_class` and the `fields` it passes on)."""
        actor = staff_actor(request)
        fields = form.pop("fields", ())

        def run(code, data):
            return service(tenant=code.tenant, code=code.code, actor=actor, **{name: data[name] for name in fields})

        codes = queryset.select_related("tenant")
        return confirmed_action(self, request, codes, title=title, question=question, run=run, done_message=done, **form)

    @admin.action(description="Void selected codes", permissions=["change"])
    def void_codes(self, request, queryset):
        question = (
            "Voided codes can never be assigned, locked or redeemed again; their active reservations end. Past redemptions stay."
        )
        done = "{count} code(s) voided."
        return self._codes_action(
            request, queryset, code_void, "Void codes", question, done, fields=("reason",), form_class=ReasonForm
        )

    @admin.action(description="Unassign selected codes", permissions=["change"])
    def unassign_codes(self, request, queryset):
        question = (
            "The codes go back to the book's free pool; their users lose them and their reservations end. "
            "Only assigned, never redeemed codes can be unassigned."
        )
        return self._codes_action(request, queryset, code_unassign, "Unassign codes", question, "{count} code(s) unassigned.")

    @admin.action(description="Release reservations of selected codes", permissions=["change"])
    def release_reservations(self, request, queryset):
        question = "Every active reservation (lock) of these codes ends now; checkouts holding them will have to lock again."
        done = "Reservations of {count} code(s) released."
        return self._codes_action(request, queryset, reservations_release, "Release reservations", question, done)

    # --- upload (django-import-export) --------------------------------------------------------------------

    def has_import_permission(self, request):
        return request.user.has_perm("books.add_code") and (sees_all_tenants(request) or request_tenant(request) is not None)

    def _upload_books(self, request):
        return tenant_scope(request, CouponBook.objects.exclude(status=CouponBook.Status.ARCHIVED))

    def get_import_form_initial(self, request):
        return {**super().get_import_form_initial(request), "book": request.GET.get("book")}

    def create_import_form(self, request):
        form = super().create_import_form(request)
        form.fields["book"].queryset = self._upload_books(request)
        return form

    def create_confirm_form(self, request, import_form=None):
        form = super().create_confirm_form(request, import_form)
        form.fields["book"].queryset = self._upload_books(request)
        return form

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["book"] = import_form.cleaned_data["book"].pk
            initial["skip_duplicates"] = import_form.cleaned_data["skip_duplicates"]
        return initial

    def get_import_resource_kwargs(self, request, **kwargs):
        data = getattr(kwargs.get("form"), "cleaned_data", None) or {}
        return {"book": data.get("book"), "skip_duplicates": bool(data.get("skip_duplicates"))}

    def write_to_tmp_storage(self, import_file, input_format):
        # import-export joins the chunks with `data += chunk` (quadratic on a large file): once, here.
        tmp_storage = self.get_tmp_storage_class()(
            encoding=None, read_mode=input_format.get_read_mode(), **self.get_tmp_storage_class_kwargs()
        )
        tmp_storage.save(b"".join(import_file.chunks()))
        return tmp_storage

    def add_data_read_fail_error_to_form(self, form, e):
        # The readers' own message (a bound, a damaged file) rather than import-export's generic one.
        form.add_error("import_file", str(e) if isinstance(e, ValueError) and str(e) else "The file cannot be read.")

    def import_action(self, request, **kwargs):
        """The preview. A file that gets no confirm step (refused, unreadable) is deleted at once; a confirmed one is
        deleted by import-export after the import; one left at the preview is purged by beat (backoffice.tasks).

        A file too large to read within a request's time skips the preview: it goes to an upload job at once (the
        same as the API), whose page shows its progress and, at the end, what was imported or why nothing was."""
        large = self._large_upload(request)
        if large is not None:
            return large
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None) or {}
        form = context.get("form")
        # The uploaded file object carries the stored copy's name (a read error removes it from cleaned_data).
        upload = form.files.get("import_file") if form is not None else None
        name = getattr(upload, "tmp_storage_name", None)
        if name and not context.get("confirm_form"):
            preview_file_remove(self, name)
        return response

    def _large_upload(self, request):
        if request.method != "POST" or not self.has_import_permission(request):
            return None
        form = self.create_import_form(request)
        if not form.is_valid():
            return None
        upload = form.cleaned_data["import_file"]
        if upload_inspect(upload, upload.name or "").inflated <= settings.COUPONS["SYNC_UPLOAD_BYTES"]:
            return None
        book = form.cleaned_data["book"]
        try:
            job = upload_file_request(
                book=book,
                file=upload,
                filename=upload.name or "",
                actor=staff_actor(request),
                skip_duplicates=form.cleaned_data["skip_duplicates"],
            )
        except ApplicationError as exc:
            self.message_user(request, f"Nothing was imported: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:books_code_import") + f"?book={book.pk}")
        return creation_response(self, request, job, book=book, verb="Uploaded")

    def process_dataset(self, dataset, form, request, **kwargs):
        """The confirm step: the whole list to the upload service (all or nothing; a job above 10,000)."""
        book = form.cleaned_data["book"]
        codes = dataset_code_strings(dataset)
        try:
            return book, upload_request(
                book=book, codes=codes, actor=staff_actor(request), skip_duplicates=form.cleaned_data["skip_duplicates"]
            )
        except ApplicationError as exc:
            return book, exc

    def process_result(self, result, request):
        book, outcome = result
        if isinstance(outcome, ApplicationError):
            self.message_user(request, f"Nothing was imported: {outcome.message}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:books_code_import") + f"?book={book.pk}")
        return creation_response(self, request, outcome, book=book, verb="Uploaded")


# --- Reservations and events (read-only history) ------------------------------------------------------------


class CodeHistoryAdmin(HistoryAdmin):
    """What happened to codes, row by row: with each row's code and book, found by the exact user id."""

    list_select_related = ("code", "book")
    search_fields = ("=user_id",)


@admin.register(Reservation)
class ReservationAdmin(CodeHistoryAdmin):
    list_display = ("code", "book", "user_id", "status", "expires_at", "created_at", "ended_at")
    list_filter = ("status", ("book", TenantRelatedListFilter))


@admin.register(Event)
class EventAdmin(CodeHistoryAdmin):
    list_display = ("created_at", "kind", "book", "code", "user_id", "actor_type", "actor_id")
    list_filter = ("kind", ("book", TenantRelatedListFilter))
    # Newest first by id (the primary key's index, read backwards): events have no (tenant, created_at) index,
    # and ids grow with time.
    ordering = ("-pk",)
    sortable_by = ()
