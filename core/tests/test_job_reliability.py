"""The reliability contract for jobs, without killing processes (scripts/chaos_check.py kills the real ones):

- a cache that raises: progress degrades to the row's heartbeat figure, the job still runs;
- a broker that refuses: the job row stays pending (not lost, not failed), and the sweeper sends it once the
  broker answers;
- a job whose lease ran out (its worker vanished): the sweeper takes it back and it runs again, or ends failed
  with the reason after MAX_ATTEMPTS runs; a run that lost its job keeps nothing, so the work is done once.
"""

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from books.models import Code
from books.services.code_creation import generation_request
from books.tasks import run_generation_job
from core.actors import Actor
from core.models import Job
from core.services import JobHeartbeat, job_claim, job_create, job_progress, job_run, jobs_sweep
from coupons_site.celery import app as celery_app
from tests.factories import CodeFactory, CouponBookFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def jobs_settings(settings, tmp_path):
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 5}
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def local_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _generation_job(book, count=12):
    return job_create(
        tenant=book.tenant,
        kind=Job.Kind.GENERATE,
        task=run_generation_job,
        actor=Actor.system("test"),
        total=count,
        book=book,
        params={"count": count, "pattern": "LEASE-######", "charset": None},
    )


def _lease_runs_out(job: Job) -> None:
    """What a vanished worker leaves behind: a running job whose lease is in the past."""
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


# --- A cache that raises ------------------------------------------------------------------------------------


def test_with_the_cache_unreachable_a_job_runs_and_its_progress_comes_from_the_row(book, cache_unreachable):
    # Given
    job = _generation_job(book, count=10)
    seen = []

    def work(running, report):
        report(4)  # to the cache, which is down: dropped, logged
        heartbeat = JobHeartbeat(running)
        heartbeat.done = 4
        heartbeat.beat()  # what the heartbeat thread does every HEARTBEAT_SECONDS
        seen.append(job_progress(job=Job.objects.get(pk=running.pk)))
        return {"created": 10}

    # When
    finished = job_run(job_id=job.pk, work=work)
    # Then: progress read the row's figure; the job succeeded
    assert seen == [4]
    assert (finished.status, finished.done, finished.error) == (Job.Status.SUCCEEDED, 10, "")


# --- A broker that refuses ----------------------------------------------------------------------------------


def test_a_job_whose_message_the_broker_refuses_stays_pending_and_the_sweeper_sends_it_later(
    book, local_cache, django_capture_on_commit_callbacks, broker_unreachable
):
    # Given: a large generation while the broker is down
    with django_capture_on_commit_callbacks(execute=True):
        job = generation_request(book=book, count=12, pattern="LATE-######", actor=Actor.system("test"))
    job.refresh_from_db()
    assert (job.status, job.enqueued_at, job.attempts) == (Job.Status.PENDING, None, 0)
    # When: the sweeper runs while the broker is still down, nothing changes but the send time
    assert jobs_sweep().send_failures == 1
    job.refresh_from_db()
    assert (job.status, job.enqueued_at) == (Job.Status.PENDING, None)


def test_the_sweeper_sends_a_refused_job_once_the_broker_answers(book, local_cache, eager):
    # Given: a job whose message the broker refused
    job = _generation_job(book)
    Job.objects.filter(pk=job.pk).update(enqueued_at=None)
    # When: the sweeper runs with the broker back (eager: the task runs here)
    result = jobs_sweep()
    # Then
    job.refresh_from_db()
    assert result.resent == 1
    assert (job.status, job.attempts, job.done) == (Job.Status.SUCCEEDED, 1, 12)
    assert Code.objects.filter(book=book).count() == 12


def test_the_sweeper_resends_only_jobs_that_waited_too_long(book, settings, local_cache, eager):
    settings.COUPONS = {**settings.COUPONS, "JOB_RESEND_AFTER_SECONDS": 60}
    fresh, lost = _generation_job(book), _generation_job(CouponBookFactory(tenant=book.tenant))
    # The broker accepted `lost`'s message two minutes ago and then restarted empty.
    Job.objects.filter(pk=lost.pk).update(enqueued_at=timezone.now() - timedelta(minutes=2))
    assert jobs_sweep().resent == 1
    fresh.refresh_from_db()
    lost.refresh_from_db()
    assert (fresh.status, lost.status) == (Job.Status.PENDING, Job.Status.SUCCEEDED)


# --- A job whose lease ran out ------------------------------------------------------------------------------


def test_a_running_job_whose_lease_ran_out_is_taken_back_and_runs_again(book, local_cache, eager):
    # Given: a worker claimed the job and vanished
    job = _generation_job(book)
    job_claim(job_id=job.pk)
    _lease_runs_out(job)
    # When
    result = jobs_sweep()
    # Then: run again at once (the sweeper re-sent it), done exactly once
    job.refresh_from_db()
    assert (result.requeued, result.resent) == (1, 1)
    assert (job.status, job.attempts, job.error, job.lease_expires_at) == (Job.Status.SUCCEEDED, 2, "", None)
    assert Code.objects.filter(book=book).count() == 12


def test_a_taken_back_job_shows_why_while_it_waits(book, local_cache, broker_unreachable):
    job = _generation_job(book)
    job_claim(job_id=job.pk)
    _lease_runs_out(job)
    result = jobs_sweep()  # the broker is down too: the job waits, pending, for the next sweep
    job.refresh_from_db()
    assert (result.requeued, result.send_failures) == (1, 1)
    assert (job.status, job.enqueued_at) == (Job.Status.PENDING, None)
    assert job.error.startswith("Run 1 ended without finishing")
    assert job.worker == "" and job.lease_expires_at is None


def test_a_job_whose_worker_keeps_vanishing_ends_failed_with_the_reason(book, settings, local_cache):
    # Given: the last allowed run lost its worker too
    settings.COUPONS = {**settings.COUPONS, "JOB_MAX_ATTEMPTS": 2}
    job = _generation_job(book)
    Job.objects.filter(pk=job.pk).update(attempts=1)
    claimed = job_claim(job_id=job.pk)
    assert claimed.attempts == 2
    _lease_runs_out(job)
    # When
    result = jobs_sweep()
    # Then
    job.refresh_from_db()
    assert result.failed == 1
    assert job.status == Job.Status.FAILED and job.finished_at is not None
    assert "Run 2 of 2 ended without finishing" in job.error and claimed.worker in job.error
    assert Code.objects.filter(book=book).count() == 0


def test_a_job_with_a_live_lease_is_left_alone(book, local_cache):
    job = _generation_job(book)
    job_claim(job_id=job.pk)
    assert jobs_sweep().requeued == 0
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


# --- Exactly once, with real concurrency (PostgreSQL) ----------------------------------------------------------


@contextmanager
def _row_locked_elsewhere(job: Job):
    """The job's row locked by another connection's open transaction (as the job's own work may hold it)."""
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                list(Job.objects.select_for_update().filter(pk=job.pk))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sweeper_leaves_alone_an_expired_job_whose_row_a_live_transaction_holds(local_cache, broker_unreachable):
    # Given: the lease ran out, but the job's work holds its row (a live worker that could not renew)
    job = job_claim(job_id=_generation_job(CouponBookFactory(tenant=TenantFactory())).pk)
    _lease_runs_out(job)
    # When
    with _row_locked_elsewhere(job):
        skipped = jobs_sweep()
    taken_back = jobs_sweep()  # once the transaction has ended
    # Then
    assert (skipped.requeued, taken_back.requeued) == (0, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_that_lost_its_job_keeps_nothing_so_the_work_is_done_once(local_cache, broker_unreachable):
    """Run A is slow; meanwhile its lease runs out, the sweeper takes the job back and run B (another worker,
    another connection) does the job. When A finishes, it no longer owns the job: its work is rolled back."""
    # Given
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    job = _generation_job(book, count=12)  # its message is refused: only run A below starts it
    outcome = {}

    def other_worker():
        celery_app.conf.task_always_eager = True  # the sweeper's message runs at once, in this thread
        try:
            _lease_runs_out(job)
            outcome["sweep"] = jobs_sweep()  # takes the job back and re-sends it: run B, here, eagerly
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    def slow_work(running, report):
        CodeFactory(book=book, code="RUN-A-WAS-HERE")
        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join()
        return {"created": 1}

    # When
    run_a = job_run(job_id=job.pk, work=slow_work)
    # Then
    job.refresh_from_db()
    assert "error" not in outcome, outcome
    assert run_a is None
    assert outcome["sweep"].requeued == 1
    assert (job.status, job.attempts, job.done) == (Job.Status.SUCCEEDED, 2, 12)
    assert not Code.objects.filter(code="RUN-A-WAS-HERE").exists()
    assert Code.objects.filter(book=book).count() == 12


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_lease_skips_a_locked_row_and_notices_a_lost_job(local_cache):
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    job = job_claim(job_id=_generation_job(book).pk)
    heartbeat = JobHeartbeat(job)
    # Renewal: the lease moves on, the progress reaches the row
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now())
    heartbeat.done = 7
    heartbeat.beat()
    row = Job.objects.get(pk=job.pk)
    assert row.lease_expires_at > timezone.now() + timedelta(seconds=30) and row.done == 7
    # A row locked by another transaction (the work's final update): skipped, not waited for, not lost
    with _row_locked_elsewhere(job):
        heartbeat.done = 9
        heartbeat.beat()
    assert Job.objects.get(pk=job.pk).done == 7 and not heartbeat.lost
    # The sweeper took the job back: the next beat notices, and the run's next progress report stops it
    Job.objects.filter(pk=job.pk).update(status=Job.Status.PENDING)
    heartbeat.beat()
    assert heartbeat.lost
    with pytest.raises(Exception, match="taken back"):
        heartbeat.report(10)
