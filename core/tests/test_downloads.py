"""Job.download_ready (the one test for "this job has a download") and the one attachment response."""

import pytest
from django.core.files.base import ContentFile

from core.downloads import XLSX_CONTENT_TYPE, attachment_response, job_file_response
from core.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def _job(tenant, *, kind=Job.Kind.EXPORT, status=Job.Status.SUCCEEDED, content=b"PK-workbook") -> Job:
    job = Job.objects.create(tenant=tenant, kind=kind, status=status, actor_type="system", total=1)
    if content is not None:
        job.file.save("redemptions-acme.xlsx", ContentFile(content), save=True)
    return job


@pytest.mark.parametrize(
    ("kind", "status", "content", "ready"),
    [
        (Job.Kind.EXPORT, Job.Status.SUCCEEDED, b"x", True),
        (Job.Kind.EXPORT, Job.Status.SUCCEEDED, None, False),
        (Job.Kind.EXPORT, Job.Status.RUNNING, b"x", False),
        (Job.Kind.EXPORT, Job.Status.FAILED, b"x", False),
        (Job.Kind.UPLOAD, Job.Status.SUCCEEDED, b"x", False),  # an upload's stored input is not a download
    ],
)
def test_download_ready_only_for_a_finished_export_with_its_file(tenant, media, kind, status, content, ready):
    assert _job(tenant, kind=kind, status=status, content=content).download_ready is ready


def test_bytes_are_answered_as_a_named_attachment():
    response = attachment_response(b"workbook", filename="redemptions-acme-20260101.xlsx")
    assert response.content == b"workbook"
    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    assert response["Content-Disposition"] == 'attachment; filename="redemptions-acme-20260101.xlsx"'


def test_a_name_outside_ascii_is_encoded_for_the_header():
    response = attachment_response(b"x", filename="réductions.xlsx", content_type="application/octet-stream")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''r%C3%A9ductions.xlsx"


def test_a_jobs_file_is_streamed_under_its_stored_name(tenant, media):
    job = _job(tenant, content=b"PK-workbook")
    response = job_file_response(job)
    assert b"".join(response.streaming_content) == b"PK-workbook"
    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    assert response["Content-Disposition"] == f'attachment; filename="{job.file.name.rsplit("/", 1)[-1]}"'
