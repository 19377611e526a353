"""The dashboard's views beside the ModelAdmins: the tenant dashboard (the admin's index for a tenant user), the JSON
progress of a job (polled by the job page every second) and the download of a finished export or distribution."""

from django.contrib import admin
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from backoffice.charts import Bar, bar_chart_svg, horizontal_bar_chart_svg
from backoffice.scoping import rendered, request_tenant, sees_all_tenants, tenant_timezone
from books.models import CouponBook
from books.usage import books_with_usage, discount_given, redemptions_per_day
from core.downloads import XLSX_CONTENT_TYPE, job_file_response
from core.exceptions import ApplicationError, error_response
from core.models import Job
from core.selectors import job_get
from redemptions.selectors import money_add

DASHBOARD_BOOKS = 50


def dashboard(request):
    """A tenant user's home: their books with usage figures and charts, above the usual list of models."""
    tenant = request_tenant(request)
    if tenant is None:
        return admin.site.index(request)
    context = {
        **admin.site.each_context(request),
        "title": f"{tenant.name}: back office",
        "subtitle": None,
        "app_list": admin.site.get_app_list(request),
        "tenant": tenant,
    }
    if request.user.has_perm("books.view_couponbook"):
        books = list(
            books_with_usage(CouponBook.objects.filter(tenant=tenant).exclude(status=CouponBook.Status.ARCHIVED)).order_by(
                "-created_at"
            )[:DASHBOARD_BOOKS]
        )
        series = redemptions_per_day(tenant=tenant)
        discount: dict = {}
        for book in books:
            book.discount_totals = discount_given(book)
            discount = money_add(discount, book.discount_totals)
        context.update(
            books=books,
            totals={
                "codes": sum(book.codes_total for book in books),
                "assigned": sum(book.codes_assigned for book in books),
                "redemptions": sum(book.redemptions_count for book in books),
                "discount": discount,  # per currency: money is never summed across currencies
                "last_days": sum(row["redemptions"] for row in series),
            },
            per_day_chart=bar_chart_svg(
                [Bar(label=f"{row['day']:%d %b}", value=row["redemptions"]) for row in series],
                title=f"Redemptions per day, last {len(series)} days ({tenant.timezone})",
            ),
            # Horizontal: one row per book, so long names and many books stay readable (cut names show whole on hover).
            per_book_chart=horizontal_bar_chart_svg(
                [
                    Bar(label=book.name, value=book.redemptions_count, title=f"{book.name}: {book.redemptions_count}")
                    for book in books[:20]
                ],
                title="Redemptions per book",
            ),
        )
    with tenant_timezone(request):
        return rendered(TemplateResponse(request, "admin/dashboard/dashboard.html", context))


def _job_for(request, job_id) -> Job:
    if not request.user.has_perm("core.view_job"):
        raise Http404("No such job.")
    if sees_all_tenants(request):
        job = Job.objects.select_related("tenant").filter(pk=job_id).first()
        if job is None:
            raise Http404("No such job.")
        return job_get(tenant=job.tenant, job_id=job_id)
    tenant = request_tenant(request)
    if tenant is None:
        raise Http404("No such job.")
    try:
        return job_get(tenant=tenant, job_id=job_id)
    except ApplicationError as exc:  # another tenant's job is simply not found
        raise Http404(exc.message) from None


def job_message(job: Job) -> str:
    """What a succeeded job did, in a sentence (its page shows it, at load or when its polling sees the end)."""
    result = job.result or {}
    if job.kind == Job.Kind.EXPORT:
        return f"Exported {result.get('rows', job.total):,} redemptions."
    if job.kind == Job.Kind.DISTRIBUTE:
        return (
            f"Assigned {result.get('assigned', 0):,} codes; {result.get('already_assigned', 0):,} users kept the code "
            f"they held; {result.get('invalid', 0):,} invalid user ids."
        )
    text = f"Created {result.get('created', 0):,} codes."
    if result.get("skipped_count"):
        text += f" {result['skipped_count']:,} duplicates skipped."
    return text


def job_progress(request, job_id: int):
    """{status, done, total, percent, error, finished, download_url}: what the progress bar shows."""
    try:
        job = _job_for(request, job_id)
    except Http404:
        return error_response("job_not_found", "No such job.")
    done = job.progress_done
    download = None
    if job.download_ready and may_download(request, job):
        download = reverse("dashboard:job_download", args=[job.pk])
    return JsonResponse(
        {
            "id": job.pk,
            "kind": job.kind,
            "status": job.status,
            "status_display": job.get_status_display(),
            "total": job.total,
            "done": done,
            "percent": round(100 * done / job.total) if job.total else (100 if job.is_finished else 0),
            "finished": job.is_finished,
            "error": job.error,
            "message": job_message(job) if job.status == Job.Status.SUCCEEDED else "",
            "download_url": download,
        }
    )


# Who may download a job's file: an export's workbook holds redemptions, a distribution's CSV holds codes.
DOWNLOAD_PERMISSIONS = {Job.Kind.EXPORT: "redemptions.export_redemption", Job.Kind.DISTRIBUTE: "books.change_code"}


def may_download(request, job: Job) -> bool:
    permission = DOWNLOAD_PERMISSIONS.get(job.kind)
    return permission is not None and request.user.has_perm(permission)


def job_download(request, job_id: int):
    """A finished export's workbook or distribution's CSV, to staff of the job's own tenant who may see it."""
    job = _job_for(request, job_id)
    if not may_download(request, job):
        raise Http404("No such file.")
    if not job.download_ready:
        raise Http404("This job has no file to download.")
    return job_file_response(
        job, content_type="text/csv; charset=utf-8" if job.kind == Job.Kind.DISTRIBUTE else XLSX_CONTENT_TYPE
    )
