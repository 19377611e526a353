"""Job lifecycle: create and queue, claim under a lease, report progress, finish; and the sweeper that takes back
jobs whose worker vanished and re-sends jobs whose message never came.

The job row is the truth; a broker message only wakes a worker up. So:
- the message is sent after the row commits (`job_create` queues it on commit), and a broker that refuses it
  leaves the job pending, with `enqueued_at` null, for the sweeper to send again;
- a worker claims a pending job (pending -> running, one winner) with a lease on the row, which a heartbeat
  thread renews on a connection of its own while the work runs;
- the work runs in one transaction that ends by marking the job succeeded only if this run still owns it (its
  attempt number, status running): a run whose job was taken back rolls everything back, so a job that runs
  twice does its work once;
- `jobs_sweep` (beat) puts a running job whose lease ran out back to pending (or fails it after
  MAX_ATTEMPTS runs) and re-sends pending jobs that waited too long.

Progress goes to the shared cache while a job runs (rows written inside the job's transaction are invisible
to everyone else until it commits). When the cache is unreachable, progress falls back to the row's `done`,
which the heartbeat writes on every beat: the bar moves in steps of a heartbeat instead of freezing.
"""

import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Task, current_app
from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Model, Q
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError

from .dependencies import BROKER_ERRORS, cache_delete, cache_get, cache_set
from .models import Job
from .signals import job_finished

logger = logging.getLogger(__name__)
PROGRESS_TTL = 24 * 3600


def _jobs_setting(name: str) -> int:
    return int(settings.COUPONS[f"JOB_{name}"])


def _progress_key(job_id: int) -> str:
    return f"job-progress:{job_id}"


class JobLeaseLost(Exception):
    """This run no longer owns its job (the sweeper took it back): its work must not be kept."""


# --- Creating and sending -----------------------------------------------------------------------------------


def job_create(
    *,
    tenant: Model,  # a tenants.Tenant (core imports no app above it)
    kind: str,
    actor: Actor,
    total: int,
    task: Task,
    book: Model | None = None,  # a books.CouponBook
    params: dict | None = None,
    input_file: File | None = None,
    input_suffix: str = "",
) -> Job:
    """Store a pending job run by the Celery `task`, and send its wake-up message once the row has committed.

    `input_file` (a list or an uploaded file the job reads) is stored with the row, as `<kind>-<id>.<input_suffix>`
    in the shared media storage: it travels there, not in the broker message.
    """
    with transaction.atomic():
        job = Job.objects.create(
            tenant=tenant,
            kind=kind,
            book=book,
            total=total,
            params=params or {},
            actor_type=actor.kind,
            actor_id=actor.id,
            task=task.name,
            enqueued_at=timezone.now(),
        )
        if input_file is not None:
            input_file.seek(0)
            job.file.save(f"{kind}-{job.pk}.{input_suffix}", input_file, save=True)
        transaction.on_commit(lambda: job_send(job=job))
    return job


def job_send(*, job: Job) -> bool:
    """Hand the job's message to the broker. A refusal is logged, never raised: the job stays pending with
    `enqueued_at` cleared, and the sweeper sends it again once the broker answers."""
    try:
        # A signature by name runs eagerly when CELERY_TASK_ALWAYS_EAGER is on and the task is registered, and
        # otherwise publishes by name (the sweeper, in a worker, needs no import of the job's app).
        current_app.signature(job.task, args=(job.pk,)).apply_async()
    except BROKER_ERRORS as exc:
        logger.warning(
            "broker refused the message of job %s (%s: %s); the sweeper will send it again", job.pk, type(exc).__name__, exc
        )
        try:
            Job.objects.filter(pk=job.pk, status=Job.Status.PENDING).update(enqueued_at=None)
        except DatabaseError:  # the row keeps its send time: the sweeper still re-sends it, a little later
            logger.warning("could not mark job %s as not sent", job.pk, exc_info=True)
        return False
    return True


# --- Running ------------------------------------------------------------------------------------------------


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def job_claim(*, job_id: int) -> Job | None:
    """Move a pending job to running under a fresh lease; None when it is not pending (a second delivery of its
    message, or a job finished already, does nothing)."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.PENDING).update(
        status=Job.Status.RUNNING,
        started_at=now,
        attempts=F("attempts") + 1,
        lease_expires_at=now + timedelta(seconds=_jobs_setting("LEASE_SECONDS")),
        worker=_worker_name(),
        done=0,
    )
    return Job.objects.get(pk=job_id) if claimed else None


def job_progress_report(*, job: Job, done: int) -> None:
    cache_set(_progress_key(job.pk), min(done, job.total), PROGRESS_TTL)


def job_progress(*, job: Job) -> int:
    """Units done: from the cache while the job runs (the row's heartbeat figure when the cache is away or has
    nothing yet), from the row once it has finished."""
    if job.status == Job.Status.RUNNING:
        return int(cache_get(_progress_key(job.pk), job.done))
    return job.done


class JobHeartbeat:
    """Renews a running job's lease, and copies its progress (and its total, which a job reading its input
    learns as it runs) to the row, every HEARTBEAT_SECONDS.

    It runs in a thread, so it has a database connection of its own: the job's work holds an open transaction
    on the main connection, and a renewal written there would be invisible until the work commits. The renewal
    skips a row that is locked (the work's final update holds it for a moment) rather than wait for it: waiting
    could deadlock with the thread that joins this one.
    """

    RENEW_SQL = f"""
        UPDATE {Job._meta.db_table} SET lease_expires_at = %s, done = %s, total = %s
        WHERE id = (SELECT id FROM {Job._meta.db_table} WHERE id = %s AND status = %s AND attempts = %s FOR UPDATE SKIP LOCKED)
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.done = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{job.pk}-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, done: int) -> None:
        """The work's progress callback: to the cache now, to the row at the next beat; stops a run that lost
        its job (the exception rolls the work's transaction back)."""
        if self.lost:
            raise JobLeaseLost(f"job {self.job.pk} was taken back from this worker")
        self.done = done
        job_progress_report(job=self.job, done=done)

    def _run(self) -> None:
        interval = _jobs_setting("HEARTBEAT_SECONDS")
        try:
            while not self._stop.wait(interval):
                self.beat()
        finally:
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        """One renewal. A database that is briefly away is not a lost lease: the next beat tries again."""
        job = self.job
        lease_until = timezone.now() + timedelta(seconds=_jobs_setting("LEASE_SECONDS"))
        done = min(self.done, job.total)
        try:
            with connection.cursor() as cursor:
                cursor.execute(self.RENEW_SQL, [lease_until, done, job.total, job.pk, Job.Status.RUNNING, job.attempts])
                renewed = cursor.rowcount
            if not renewed:
                # Skipped because the row is locked, or lost? A plain read never waits on the lock.
                row = Job.objects.filter(pk=job.pk).values("status", "attempts").first()
                if row is not None and (row["status"] != Job.Status.RUNNING or row["attempts"] != job.attempts):
                    self.lost = True
                    logger.warning("job %s (attempt %s) was taken back from this worker", job.pk, job.attempts)
        except DatabaseError:
            logger.warning("heartbeat of job %s could not reach the database", job.pk, exc_info=True)
            connection.close()


def job_run(*, job_id: int, work: Callable[[Job, Callable[[int], None]], dict[str, Any]]) -> Job | None:
    """Claim the job, run `work(job, report)` in one transaction and record success (its result) or failure
    (a readable error). None when the job was not this call's to run, or was taken back while it ran."""
    job = job_claim(job_id=job_id)
    if job is None:
        return None
    heartbeat = JobHeartbeat(job)
    heartbeat.start()
    try:
        with transaction.atomic():
            result = work(job, heartbeat.report)
            # In the work's transaction: the work is kept only if this run still owns the job.
            if not _job_finish(job=job, status=Job.Status.SUCCEEDED, result=result, done=job.total):
                raise JobLeaseLost(f"job {job.pk} was taken back from this worker")
    except JobLeaseLost:
        logger.warning("job %s: this run (attempt %s) lost its lease; its work was rolled back", job.pk, job.attempts)
        return None
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
    finally:
        heartbeat.stop()  # after the commit above: the heartbeat never waits on the row the work locked
    job.refresh_from_db()
    cache_delete(_progress_key(job.pk))
    return job


def _job_finish(*, job: Job, status: str, result: dict, error: str = "", done: int | None = None) -> bool:
    """Record the end of this run; False when the job is no longer this run's (taken back, or ended)."""
    fields = {"status": status, "result": result, "error": error, "finished_at": timezone.now(), "lease_expires_at": None}
    if done is not None:
        fields["done"] = done
        fields["total"] = job.total  # a work that learns its total (an upload's file) sets job.total
    with transaction.atomic():
        owned = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts)
        if not owned.update(**fields):
            return False
        # In the same transaction: the job.finished webhook commits with the job's end, or not at all.
        job_finished.send(sender=Job, job=Job.objects.get(pk=job.pk))
    return True


# --- The sweeper (beat) -------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    requeued: int = 0  # running jobs whose worker vanished, put back to pending
    failed: int = 0  # the same, after MAX_ATTEMPTS runs: ended failed with the reason
    resent: int = 0  # pending jobs whose wake-up message was sent again
    send_failures: int = 0


def _job_take_back(*, job: Job, now: datetime, max_attempts: int, result: SweepResult) -> bool:
    """Put a job whose lease ran out back to pending, or fail it after its last run. Inside a transaction.

    The row is locked first with SKIP LOCKED: a row locked by someone else belongs to a live transaction, most
    often the job's own work (which may update its row, e.g. to set its total), so it is left alone rather than
    waited for. A worker that is really gone holds no lock (PostgreSQL ends its transaction with the connection).
    """
    owned = (
        Job.objects.select_for_update(skip_locked=True)
        .filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts, lease_expires_at__lt=now)
        .values_list("pk", flat=True)
    )
    if owned.first() is None:
        return False
    row = Job.objects.filter(pk=job.pk)
    lost = (
        f"the worker running it ({job.worker or 'unknown'}) stopped renewing its lease at "
        f"{job.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if job.attempts >= max_attempts:
        row.update(
            status=Job.Status.FAILED,
            finished_at=now,
            lease_expires_at=None,
            error=f"Run {job.attempts} of {max_attempts} ended without finishing: {lost}. Nothing of it was kept; "
            "it was not started again.",
        )
        job_finished.send(sender=Job, job=Job.objects.get(pk=job.pk))  # in the sweeper's transaction
        result.failed += 1
        logger.warning("job %s failed: its worker was lost %s times", job.pk, job.attempts)
    else:
        row.update(
            status=Job.Status.PENDING,
            lease_expires_at=None,
            worker="",
            done=0,
            enqueued_at=None,
            error=f"Run {job.attempts} ended without finishing ({lost}); nothing of it was kept, and it runs again.",
        )
        result.requeued += 1
        logger.warning("job %s taken back after its worker was lost; it runs again", job.pk)
    return True


def jobs_sweep() -> SweepResult:
    """Take back running jobs whose lease ran out, and re-send pending jobs that waited too long.

    A job is taken back under its row lock (skipping rows others hold) and re-sent after a conditional UPDATE,
    so a second sweeper, or a worker renewing its lease at the same moment, never makes a job change twice.
    """
    result = SweepResult()
    now = timezone.now()
    max_attempts = _jobs_setting("MAX_ATTEMPTS")
    expired = Job.objects.filter(status=Job.Status.RUNNING, lease_expires_at__lt=now)
    for job in expired.only("pk", "attempts", "worker", "lease_expires_at"):
        with transaction.atomic():
            if not _job_take_back(job=job, now=now, max_attempts=max_attempts, result=result):
                continue
        cache_delete(_progress_key(job.pk))
    resend_before = now - timedelta(seconds=_jobs_setting("RESEND_AFTER_SECONDS"))
    waiting = Job.objects.filter(status=Job.Status.PENDING).filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=resend_before))
    for job in waiting.only("pk", "task", "enqueued_at"):
        # Marked sent first (a conditional update), so two sweepers never both send it.
        marked = Job.objects.filter(pk=job.pk, status=Job.Status.PENDING, enqueued_at=job.enqueued_at).update(enqueued_at=now)
        if not marked:
            continue
        if job_send(job=job):
            result.resent += 1
        else:
            result.send_failures += 1
    return result
