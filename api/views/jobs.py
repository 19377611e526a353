"""Jobs: the status and progress of long work (bulk generation and upload, large exports, distributions), and their
result files (an export's workbook, a distribution's CSV)."""

from rest_framework.exceptions import NotAcceptable
from rest_framework.response import Response

from core.downloads import job_file_response
from core.exceptions import ApplicationError
from core.models import Job
from core.selectors import job_get

from ..schema import (
    BINARY,
    CSV,
    JOB_FILE_TYPES,
    XLSX,
    errors,
    file_content_type,
    job_file_schema,
    operation,
    workbook_content_type,
)
from ..serializers import JobOutput
from .base import ApiView


class JobDetailView(ApiView):
    error_codes = errors("job_not_found")

    @operation("job_get", "jobs", responses={200: JobOutput})
    def get(self, request, job_id):
        """A job's status and progress"""
        return Response(JobOutput(job_get(tenant=self.tenant, job_id=job_id), context={"request": request}).data)


class JobFileView(ApiView):
    produces = JOB_FILE_TYPES  # Accept: the workbook, the CSV or bytes are served (api.negotiation)
    error_codes = errors("job_not_found")

    @operation(
        "job_file_download",
        "jobs",
        responses=job_file_schema(
            "An export's workbook, or a distribution's CSV `user_id,code,status` (UTF-8), sent as an attachment."
        ),
    )
    def get(self, request, job_id):
        """Download the file of a finished export (workbook) or distribution (CSV) job"""
        job = job_get(tenant=self.tenant, job_id=job_id)
        if not job.download_ready:
            raise ApplicationError("job_not_found", "This job has no file to download (yet).", {"job": job.pk})
        media_type = CSV if job.kind == Job.Kind.DISTRIBUTE else XLSX
        if not (request.accepts(media_type) or request.accepts(BINARY)):
            # The view produces both files, so negotiation let it through; this job's file is only one of them.
            raise NotAcceptable(f"This job's file is {media_type} (or {BINARY}).")
        content_type = file_content_type(request, CSV) if media_type == CSV else workbook_content_type(request)
        return job_file_response(job, content_type=content_type)
