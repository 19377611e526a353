"""Large generation and upload requests become Celery jobs: they end succeeded with their counts, or failed with a
readable error, and a second delivery of the task changes nothing.

The task is queued on commit; these tests run Celery eagerly and execute the captured on-commit callbacks.
"""

import pytest

from books.models import Code, CouponBook, Event
from books.patterns import pattern_parse
from books.services.code_creation import generation_request, upload_request
from books.tasks import run_generation_job, run_upload_job
from core.exceptions import ApplicationError
from core.models import Job
from core.selectors import job_get
from coupons_site.celery import app as celery_app
from tests.factories import CodeFactory, CouponBookFactory, rows_snapshot

pytestmark = pytest.mark.django_db

SYNC_LIMIT = 5


@pytest.fixture(autouse=True)
def small_sync_limit(settings, tmp_path):
    """Jobs above 5 codes, job files in a temporary folder, progress in a cache of this process only."""
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": SYNC_LIMIT}
    settings.MEDIA_ROOT = tmp_path
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def eager():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_a_large_generation_runs_as_a_job_that_succeeds_with_its_counts(
    tenant, book, actor, eager, django_capture_on_commit_callbacks
):
    # When
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = generation_request(book=book, count=40, pattern="JOB-######", actor=actor)
    # Then
    assert isinstance(job, Job)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert (job.kind, job.status, job.tenant_id, job.book_id) == (Job.Kind.GENERATE, Job.Status.SUCCEEDED, tenant.pk, book.pk)
    assert (job.total, job.done, job.error) == (40, 40, "")
    assert job.result == {"created": 40, "warnings": []}
    assert (job.actor_type, job.actor_id) == (actor.kind, actor.id)
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    codes = list(Code.objects.filter(book=book).values_list("code", flat=True))
    parsed = pattern_parse("JOB-######")
    assert len(codes) == len(set(codes)) == 40
    assert all(parsed.matches(code) for code in codes)
    assert job_get(tenant=tenant, job_id=job.pk).progress_done == 40


def test_a_second_delivery_of_a_finished_job_does_nothing(tenant, book, actor, eager, django_capture_on_commit_callbacks):
    # Given
    with django_capture_on_commit_callbacks(execute=True):
        job = generation_request(book=book, count=8, actor=actor)
    before = rows_snapshot()
    # When: the same task delivered again
    run_generation_job(job.pk)
    run_generation_job.delay(job.pk)
    # Then
    assert rows_snapshot() == before
    assert Code.objects.filter(book=book).count() == 8
    assert Event.objects.filter(book=book, kind="generated").count() == 1


def test_a_large_upload_runs_as_a_job_that_succeeds_with_its_counts(
    tenant, book, actor, eager, django_capture_on_commit_callbacks
):
    # Given: one code exists already; the caller asks to skip duplicates
    CodeFactory(book=CouponBookFactory(tenant=tenant), code="OLD-1")
    codes = [f"up-{n}" for n in range(10)] + ["old-1", "UP-3"]
    # When
    with django_capture_on_commit_callbacks(execute=True):
        job = upload_request(book=book, codes=codes, actor=actor, skip_duplicates=True)
    # Then
    job.refresh_from_db()
    assert (job.kind, job.status, job.total, job.done) == (Job.Kind.UPLOAD, Job.Status.SUCCEEDED, 12, 12)
    assert job.result["created"] == 10
    assert job.result["skipped_count"] == 2
    assert sorted(job.result["skipped"]) == ["OLD-1", "UP-3"]
    assert sorted(Code.objects.filter(book=book).values_list("code", flat=True)) == sorted(f"UP-{n}" for n in range(10))
    # A second delivery changes nothing.
    run_upload_job(job.pk)
    assert Code.objects.filter(book=book).count() == 10


def test_a_failing_upload_job_ends_failed_with_a_readable_error_and_imports_nothing(
    tenant, book, actor, eager, django_capture_on_commit_callbacks
):
    # Given: a duplicate inside the list, and no skip_duplicates
    codes = [f"DUPJOB-{n}" for n in range(8)] + ["dupjob-0"]
    # When
    with django_capture_on_commit_callbacks(execute=True):
        job = upload_request(book=book, codes=codes, actor=actor)
    # Then
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "nothing was imported" in job.error
    assert job.result["error"]["code"] == "duplicate_codes"
    assert job.result["error"]["details"]["codes"] == ["DUPJOB-0"]
    assert job.finished_at is not None
    assert not Code.objects.filter(book=book).exists()
    assert not Event.objects.filter(book=book).exists()
    # Running it again does nothing: it stays failed.
    run_upload_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert not Code.objects.filter(book=book).exists()


def test_a_generation_job_whose_book_was_archived_meanwhile_fails_readably(
    tenant, book, actor, eager, django_capture_on_commit_callbacks
):
    # When: the book is archived between the request and the run
    with django_capture_on_commit_callbacks(execute=True):
        job = generation_request(book=book, count=20, actor=actor)
        CouponBook.objects.filter(pk=book.pk).update(status=CouponBook.Status.ARCHIVED)
    # Then
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "Codes cannot be added to an archived book."
    assert not Code.objects.filter(book=book).exists()


def test_a_job_that_crashes_ends_failed_with_the_exception_named(tenant, book, actor, eager, django_capture_on_commit_callbacks):
    # Given: the job's stored list is gone before the task runs
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = upload_request(book=book, codes=[f"GONE-{n}" for n in range(9)], actor=actor)
    job.refresh_from_db()
    job.file.storage.delete(job.file.name)
    # When
    for callback in callbacks:
        callback()
    # Then
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("FileNotFoundError")
    assert not Code.objects.filter(book=book).exists()


def test_a_job_is_not_queued_before_the_request_commits(tenant, book, actor, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = generation_request(book=book, count=9, actor=actor)
    job.refresh_from_db()
    assert job.status == Job.Status.PENDING
    assert len(callbacks) == 1
    assert not Code.objects.filter(book=book).exists()


@pytest.mark.parametrize(
    ("call", "kwargs", "error_code"),
    [
        (generation_request, {"count": 100, "pattern": "AB"}, "invalid_pattern"),
        (generation_request, {"count": 100, "pattern": "ABC"}, "pattern_no_random_symbol"),
        (generation_request, {"count": 101, "pattern": "X##"}, "pattern_space_too_small"),
        (upload_request, {"codes": ["OK-1"] * 3 + ["bad code"] * 5}, "invalid_codes"),
        (upload_request, {"codes": []}, "empty_upload"),
    ],
)
def test_bad_large_requests_are_refused_before_any_job_exists(book, actor, call, kwargs, error_code):
    before = rows_snapshot()
    with pytest.raises(ApplicationError) as caught:
        call(book=book, actor=actor, **kwargs)
    assert caught.value.code == error_code
    assert rows_snapshot() == before


def test_a_large_request_into_an_archived_book_is_refused_before_any_job_exists(tenant, book, actor):
    CouponBook.objects.filter(pk=book.pk).update(status=CouponBook.Status.ARCHIVED)
    book.refresh_from_db()
    for call, kwargs in ((generation_request, {"count": 50}), (upload_request, {"codes": [f"A-{n}" for n in range(9)]})):
        with pytest.raises(ApplicationError) as caught:
            call(book=book, actor=actor, **kwargs)
        assert caught.value.code == "book_archived"
    assert not Job.objects.exists()


def test_a_job_of_another_tenant_is_not_found(tenant, other_tenant, book, actor):
    job = generation_request(book=book, count=9, actor=actor)
    with pytest.raises(ApplicationError) as caught:
        job_get(tenant=other_tenant, job_id=job.pk)
    assert caught.value.code == "job_not_found"
