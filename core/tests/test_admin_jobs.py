"""The job page's progress: the JSON view it polls while a job runs, its error when it failed."""

import pytest
from django.urls import reverse

from core.models import Job
from core.services import job_claim, job_progress_report
from tenants.models import Role
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_job(tenant, book):
    job = Job.objects.create(tenant=tenant, book=book, kind=Job.Kind.GENERATE, total=200, actor_type="system")
    job = job_claim(job_id=job.pk)
    job_progress_report(job=job, done=50)
    return job


def test_progress_json_follows_the_running_job(client, tenant, running_job):
    logged_in(client, tenant, Role.MARKETING)
    url = reverse("backoffice:job_progress", args=[running_job.pk])
    data = client.get(url).json()
    assert {key: data[key] for key in ("status", "done", "total", "percent", "finished")} == {
        "status": "running",
        "done": 50,
        "total": 200,
        "percent": 25,
        "finished": False,
    }
    job_progress_report(job=running_job, done=150)
    assert client.get(url).json()["done"] == 150


def test_job_page_polls_the_progress_view(client, tenant, running_job):
    logged_in(client, tenant, Role.MARKETING)
    page = client.get(reverse("admin:core_job_change", args=[running_job.pk])).content.decode()
    assert 'id="job-bar"' in page and 'value="50"' in page
    assert reverse("backoffice:job_progress", args=[running_job.pk]) in page
    assert "setTimeout(poll, 1000)" in page


def test_failed_job_shows_its_error(client, tenant, book):
    job = Job.objects.create(
        tenant=tenant,
        book=book,
        kind=Job.Kind.UPLOAD,
        total=10,
        actor_type="system",
        status=Job.Status.FAILED,
        error="3 code(s) exist already; nothing was imported.",
    )
    logged_in(client, tenant, Role.MARKETING)
    data = client.get(reverse("backoffice:job_progress", args=[job.pk])).json()
    assert data["finished"] is True and data["error"] == "3 code(s) exist already; nothing was imported."
    page = client.get(reverse("admin:core_job_change", args=[job.pk])).content.decode()
    assert "3 code(s) exist already" in page


def test_unknown_job_is_a_json_404(client, tenant):
    logged_in(client, tenant, Role.MARKETING)
    response = client.get(reverse("backoffice:job_progress", args=[999999]))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_marketing_cannot_download_an_export(client, tenant):
    job = Job.objects.create(tenant=tenant, kind=Job.Kind.EXPORT, total=1, actor_type="system", status=Job.Status.SUCCEEDED)
    logged_in(client, tenant, Role.MARKETING)
    assert client.get(reverse("backoffice:job_download", args=[job.pk])).status_code == 404


def test_jobs_changelist_is_the_tenants(client, tenant, other_tenant):
    mine = Job.objects.create(tenant=tenant, kind=Job.Kind.EXPORT, total=1, actor_type="system")
    theirs = Job.objects.create(tenant=other_tenant, kind=Job.Kind.EXPORT, total=1, actor_type="system")
    logged_in(client, tenant, Role.ACCOUNTANT)
    page = client.get(reverse("admin:core_job_changelist")).content.decode()
    assert f"/admin/core/job/{mine.pk}/change/" in page
    assert f"/admin/core/job/{theirs.pk}/change/" not in page


def test_running_job_page_shows_no_error_box(client, tenant, running_job):
    logged_in(client, tenant, Role.MARKETING)
    page = client.get(reverse("admin:core_job_change", args=[running_job.pk])).content.decode()
    assert '<p id="job-error" class="errornote" style="display: none">' in page
