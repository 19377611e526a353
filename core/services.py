"""Job lifecycle: create, claim, report progress, finish. Progress lives in the shared cache while a job runs.

A job's work runs in one database transaction (so a failed import leaves nothing behind), and rows written
inside that transaction are invisible to everyone else until it commits; progress therefore goes to the shared
cache (Redis in production, a file cache locally), which every web process and worker sees at once.
"""

import logging
import traceback
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError

from .models import Job
from .signals import job_finished

logger = logging.getLogger(__name__)
PROGRESS_TTL = 24 * 3600


def _progress_key(job_id: int) -> str:
    return f"job-progress:{job_id}"


def job_create(*, tenant, kind: str, actor: Actor, total: int, book=None, params: dict | None = None) -> Job:
    return Job.objects.create(
        tenant=tenant, kind=kind, book=book, total=total, params=params or {}, actor_type=actor.kind, actor_id=actor.id
    )


def job_claim(*, job_id: int) -> Job | None:
    """Move a pending job to running; None when it was claimed already (a second delivery does nothing)."""
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.PENDING).update(
        status=Job.Status.RUNNING, started_at=timezone.now()
    )
    return Job.objects.get(pk=job_id) if claimed else None


def job_progress_report(*, job: Job, done: int) -> None:
    cache.set(_progress_key(job.pk), min(done, job.total), PROGRESS_TTL)


def job_progress(*, job: Job) -> int:
    """Units done: from the cache while the job runs, from the row once it has finished."""
    if job.status == Job.Status.RUNNING:
        return int(cache.get(_progress_key(job.pk), job.done))
    return job.done


def job_run(*, job_id: int, work: Callable[[Job, Callable[[int], None]], dict[str, Any]]) -> Job | None:
    """Claim the job, run `work(job, report)` and record success (its result) or failure (a readable error)."""
    job = job_claim(job_id=job_id)
    if job is None:
        return None

    def report(done: int) -> None:
        job_progress_report(job=job, done=done)

    try:
        result = work(job, report)
    except ApplicationError as exc:
        _job_finish(job=job, status=Job.Status.FAILED, error=exc.message, result={"error": exc.as_dict()["error"]})
    except Exception as exc:  # a job must end failed with its error shown, never stay "running"
        logger.exception("job %s failed", job.pk)
        _job_finish(
            job=job,
            status=Job.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            result={"trace": traceback.format_exc()[-2000:]},
        )
    else:
        _job_finish(job=job, status=Job.Status.SUCCEEDED, result=result, done=job.total)
    job.refresh_from_db()
    cache.delete(_progress_key(job.pk))
    return job


def _job_finish(*, job: Job, status: str, result: dict, error: str = "", done: int | None = None) -> None:
    with transaction.atomic():
        fields = {"status": status, "result": result, "error": error, "finished_at": timezone.now()}
        if done is not None:
            fields["done"] = done
        Job.objects.filter(pk=job.pk).update(**fields)
        job_finished.send(sender=Job, job=Job.objects.get(pk=job.pk))
