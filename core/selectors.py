"""Reads of jobs."""

from django.db.models import Model

from core.exceptions import ApplicationError, id_detail

from .models import Job
from .services import job_progress


def job_get(*, tenant: Model, job_id: int) -> Job:
    try:
        job = Job.objects.get(tenant=tenant, pk=job_id)
    except (Job.DoesNotExist, TypeError, ValueError):
        raise ApplicationError("job_not_found", "No such job.", {"job": id_detail(job_id)}) from None
    job.progress_done = job_progress(job=job)
    return job
