"""Back office for jobs: the tenant's jobs, each with a progress bar that updates while it runs (it polls the
JSON view dashboard.views.job_progress every second), its error when it failed, and a download link for a
finished export or distribution (served to the job's tenant only)."""

from django.contrib import admin
from django.urls import reverse

from backoffice.scoping import ReadOnlyAdminMixin, TenantScopedAdmin
from core.models import Job
from core.services import job_progress

from .views import job_message, may_download


@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ("id", "kind", "status", "tenant", "book", "progress", "created_at", "finished_at")
    list_filter = ("kind", "status", "tenant")
    list_select_related = ("tenant", "book")
    fields = (
        "tenant",
        "kind",
        "status",
        "book",
        "total",
        "done",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        # Who runs it and since when: a job taken back from a lost worker shows its runs and the reason in `error`.
        "attempts",
        "worker",
        "lease_expires_at",
    )
    change_form_template = "admin/core/job/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="Progress")
    def progress(self, job):
        done = job_progress(job=job)
        return f"{done:,} / {job.total:,}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        job = self.get_object(request, object_id)
        if job is not None:
            extra_context.update(
                job=job,
                progress_url=reverse("dashboard:job_progress", args=[job.pk]),
                progress_done=job_progress(job=job),
                may_download=job.download_ready and may_download(request, job),
                job_message=job_message(job) if job.status == Job.Status.SUCCEEDED else "",
            )
        return super().change_view(request, object_id, form_url, extra_context)
