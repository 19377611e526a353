"""Celery tasks of the books app. Each fetches by id and calls a service; each is idempotent."""

import io
import json
import tempfile
from collections.abc import Callable
from typing import IO

from celery import shared_task
from django.core.files import File

from core.actors import Actor
from core.models import Job
from core.services import job_run

from .models import CouponBook
from .parsers import codes_from_file, user_ids_from_file
from .services.code_creation import codes_generate, codes_upload
from .services.codes import reservations_expire
from .services.distribution import codes_distribute, distribution_prepare, result_csv_write


@shared_task(name="books.tasks.expire_reservations")
def expire_reservations() -> int:
    """Beat task: mark reservations past their time expired. Running it twice marks and records each once."""
    return reservations_expire()


def _actor(job) -> Actor:
    return Actor(kind=job.actor_type, id=job.actor_id)


def _job_list_read(job: Job, *, from_file: Callable[..., list[str]], stored: Callable[[IO[bytes]], list[str]]) -> list[str]:
    """A job's input list: the uploaded CSV/XLSX itself, parsed here within the same bounds as a request, or the list
    the request checked and stored (`stored` reads it back)."""
    file_format = job.params.get("file_format")
    with job.file.open("rb") as handle:
        if file_format:
            return from_file(file=handle, filename=f"upload.{file_format}")
        return stored(handle)


@shared_task(name="books.tasks.run_generation_job")
def run_generation_job(job_id: int) -> None:
    def work(job, report):
        book = CouponBook.objects.get(pk=job.book_id)
        params = job.params
        result = codes_generate(
            book=book,
            count=params["count"],
            pattern=params["pattern"],
            charset=params.get("charset"),
            actor=_actor(job),
            progress=report,
        )
        return {"created": result.created, "warnings": result.warnings}

    job_run(job_id=job_id, work=work)


@shared_task(name="books.tasks.run_upload_job")
def run_upload_job(job_id: int) -> None:
    def work(job, report):
        book = CouponBook.objects.get(pk=job.book_id)
        # A list the request stored is one code a line.
        codes = _job_list_read(job, from_file=codes_from_file, stored=lambda handle: handle.read().decode().split("\n"))
        if not job.total:
            # Never an UPDATE of the job row here: the work's transaction would hold that row, and the heartbeat
            # (which skips a locked row) could not renew the lease. The heartbeat and the finish copy it.
            job.total = len(codes)
        result = codes_upload(
            book=book, codes=codes, actor=_actor(job), skip_duplicates=job.params.get("skip_duplicates", False), progress=report
        )
        return {"created": result.created, "skipped": result.skipped, "skipped_count": result.skipped_count}

    job_run(job_id=job_id, work=work)


@shared_task(name="books.tasks.run_distribution_job")
def run_distribution_job(job_id: int) -> None:
    """Distribute the job's list and leave the result CSV `user_id,code,status` as the job's file."""

    def work(job, report):
        book = CouponBook.objects.get(pk=job.book_id)
        # A list the request stored is the list as it was sent (JSON).
        user_ids = _job_list_read(job, from_file=user_ids_from_file, stored=json.load)
        checked = distribution_prepare(user_ids=user_ids)
        if not job.total:  # learned from the file; the heartbeat and the finish copy it (see run_upload_job)
            job.total = len(checked.user_ids)
        result = codes_distribute(book=book, user_ids=checked, actor=_actor(job), progress=report)
        # The result replaces the list as the job's file. Saved in storage before the row points at it: a run
        # rolled back (a lost lease) leaves the row on the list, and the next run reads it again.
        with tempfile.TemporaryFile("w+b") as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
            result_csv_write(result, text)
            text.flush()
            handle.seek(0)
            job.file.save(f"distribution-{job.pk}.csv", File(handle), save=False)
            text.detach()
        Job.objects.filter(pk=job.pk).update(file=job.file.name)
        return {**result.summary, "filename": job.file.name.rsplit("/", 1)[-1]}

    job_run(job_id=job_id, work=work)


# The task that runs each kind of a book's job (books/services/book_jobs.py).
BOOK_JOB_TASKS = {
    Job.Kind.GENERATE: run_generation_job,
    Job.Kind.UPLOAD: run_upload_job,
    Job.Kind.DISTRIBUTE: run_distribution_job,
}
