"""Over HTTP, with a dependency lost (no process is killed here; scripts/chaos_check.py does that):

- /healthz reports the database, the cache and the broker separately; only a lost database is a 503;
- a large request whose message the broker refuses still answers 202 with a durable pending job, which runs
  once the broker answers (the beat sweeper sends it);
- with the cache unreachable, a job's status answers with its progress from the row.
"""

import pytest
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from books.models import Code
from core.models import Job
from core.services import jobs_sweep
from coupons_site.celery import app as celery_app

pytestmark = pytest.mark.django_db


def _database_down(execute, sql, params, many, context):
    raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


def test_healthz_is_ok_when_every_dependency_answers():
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok", "broker": "ok"}


def test_healthz_reports_a_lost_cache_as_degraded_not_down(cache_unreachable):
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "database": "ok", "cache": "unavailable", "broker": "ok"}


def test_healthz_reports_a_lost_broker_as_degraded_not_down(broker_unreachable):
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "database": "ok", "cache": "ok", "broker": "unavailable"}


def test_healthz_answers_503_only_for_the_database(cache_unreachable, broker_unreachable):
    with connection.execute_wrapper(_database_down):
        response = APIClient().get("/healthz")
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "cache": "unavailable",
        "broker": "unavailable",
    }


def test_a_large_generation_with_the_broker_down_answers_202_and_runs_once_the_broker_is_back(
    api, active_book, settings, tmp_path, broker_unreachable, django_capture_on_commit_callbacks
):
    # Given: the broker is down
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 10}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # When
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/books/{active_book.pk}/codes/generate/", {"count": 40}, format="json")
    # Then: accepted, the job durable and waiting
    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    assert api.get(f"/api/v1/jobs/{job_id}/").json()["status"] == "pending"
    assert Job.objects.get(pk=job_id).enqueued_at is None
    # When the broker is back, the sweeper sends it (eagerly here: the task runs in this process)
    celery_app.conf.task_always_eager = True
    assert jobs_sweep().resent == 1
    # Then
    done = api.get(f"/api/v1/jobs/{job_id}/").json()
    assert (done["status"], done["done"], done["result"]["created"]) == ("succeeded", 40, 40)
    assert Code.objects.filter(book=active_book).count() == 40


def test_a_job_status_answers_with_progress_from_the_row_while_the_cache_is_unreachable(
    api, active_book, settings, cache_unreachable
):
    # The throttles read the cache before the view: their own fallback is api/throttling.py's (and its tests');
    # this test is about the job's progress, so it runs with no rate configured.
    rates = dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    job = Job.objects.create(
        tenant=active_book.tenant, kind=Job.Kind.GENERATE, book=active_book, total=100, done=30, status=Job.Status.RUNNING
    )
    response = api.get(f"/api/v1/jobs/{job.pk}/")
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["done"]) == ("running", 30)
