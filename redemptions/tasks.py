"""Celery tasks of the redemptions app. Each fetches by id and calls a service; each is idempotent."""

import tempfile

from celery import shared_task
from django.core.files import File

from core.models import Job
from core.services import job_run

from .exports import export_filters_load, redemptions_workbook_write
from .selectors import redemptions_of_tenant


@shared_task(name="redemptions.tasks.run_export_job")
def run_export_job(job_id: int) -> None:
    """Write a large export's workbook to the job's file. A second delivery finds the job claimed and does nothing."""

    def work(job, report):
        queryset = redemptions_of_tenant(tenant=job.tenant, filters=export_filters_load(job.params["filters"]))
        # The workbook goes to a temporary file, not memory: a million rows stay a flat memory profile.
        with tempfile.TemporaryFile() as handle:
            rows = redemptions_workbook_write(tenant=job.tenant, queryset=queryset, out=handle, progress=report)
            handle.seek(0)
            job.file.save(job.params["filename"], File(handle), save=False)
        Job.objects.filter(pk=job.pk).update(file=job.file.name)
        return {"rows": rows, "filename": job.params["filename"]}

    job_run(job_id=job_id, work=work)
