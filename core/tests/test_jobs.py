"""Job lifecycle: create, claim once, progress through the shared cache, finish succeeded or failed, look-up."""

import pytest

from books.tasks import run_generation_job, run_upload_job
from core.actors import Actor
from core.exceptions import ApplicationError
from core.models import Job
from core.selectors import job_get
from core.services import job_claim, job_create, job_progress, job_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_cache(settings):
    """Progress in a cache of this process only, so parallel runs sharing the file cache cannot meet."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def job(tenant, book):
    return job_create(
        tenant=tenant, kind=Job.Kind.GENERATE, task=run_generation_job, actor=Actor.system("t"), total=10, book=book
    )


def test_job_create_stores_a_pending_job(tenant, book):
    job = job_create(
        tenant=tenant,
        kind=Job.Kind.UPLOAD,
        task=run_upload_job,
        actor=Actor(kind=Actor.STAFF, id="4"),
        total=7,
        book=book,
        params={"a": 1},
    )
    job.refresh_from_db()
    assert (job.status, job.total, job.done, job.params) == (Job.Status.PENDING, 7, 0, {"a": 1})
    assert (job.actor_type, job.actor_id, job.tenant_id, job.book_id) == ("staff", "4", tenant.pk, book.pk)
    assert (job.task, job.attempts, job.lease_expires_at) == ("books.tasks.run_upload_job", 0, None)
    assert job.enqueued_at is not None
    assert not job.is_finished


def test_a_job_is_claimed_once(job):
    claimed = job_claim(job_id=job.pk)
    assert claimed.status == Job.Status.RUNNING and claimed.started_at is not None
    assert claimed.attempts == 1 and claimed.lease_expires_at > claimed.started_at and claimed.worker
    assert job_claim(job_id=job.pk) is None


def test_job_run_records_success_with_its_result(tenant, job):
    seen = []

    def work(running, report):
        report(4)
        seen.append(job_progress(job=Job.objects.get(pk=running.pk)))
        report(99)  # capped at the total
        seen.append(job_progress(job=Job.objects.get(pk=running.pk)))
        return {"created": 10}

    finished = job_run(job_id=job.pk, work=work)
    assert seen == [4, 10]
    assert (finished.status, finished.done, finished.result, finished.error) == (Job.Status.SUCCEEDED, 10, {"created": 10}, "")
    assert finished.is_finished and finished.finished_at is not None
    assert job_get(tenant=tenant, job_id=job.pk).progress_done == 10


def test_job_run_records_an_application_error_readably(job):
    def work(running, report):
        raise ApplicationError("duplicate_codes", "2 code(s) exist already.", {"codes": ["A", "B"]})

    finished = job_run(job_id=job.pk, work=work)
    assert (finished.status, finished.error) == (Job.Status.FAILED, "2 code(s) exist already.")
    assert finished.result == {
        "error": {"code": "duplicate_codes", "message": "2 code(s) exist already.", "details": {"codes": ["A", "B"]}}
    }
    assert finished.done == 0


def test_job_run_records_a_crash_with_the_exception_named(job):
    def work(running, report):
        raise KeyError("count")

    finished = job_run(job_id=job.pk, work=work)
    assert finished.status == Job.Status.FAILED
    assert finished.error == "KeyError: 'count'"
    assert "KeyError" in finished.result["trace"]


def test_job_run_of_a_claimed_job_does_nothing(job):
    job_claim(job_id=job.pk)
    calls = []
    assert job_run(job_id=job.pk, work=lambda running, report: calls.append(1) or {}) is None
    assert calls == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


def test_job_get_is_scoped_to_the_tenant(other_tenant, job):
    for tenant, job_id in ((other_tenant, job.pk), (job.tenant, "abc"), (job.tenant, None), (job.tenant, 10**9)):
        with pytest.raises(ApplicationError) as caught:
            job_get(tenant=tenant, job_id=job_id)
        assert caught.value.code == "job_not_found"
