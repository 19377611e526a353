"""Jobs: the status and progress of long work (bulk generation and upload, large exports), and export files."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from core.downloads import job_file_response
from core.exceptions import ApplicationError
from core.selectors import job_get

from .. import examples
from ..schema import WORKBOOK_TYPES, binary_response, errors, workbook_content_type
from ..serializers import JobOutput
from .base import ApiView


class JobDetailView(ApiView):
    error_codes = errors("job_not_found")

    @extend_schema(
        operation_id="job_get",
        examples=examples.JOB_GET,
        tags=["jobs"],
        summary="A job's status and progress",
        responses={200: JobOutput},
    )
    def get(self, request, job_id):
        return Response(JobOutput(job_get(tenant=self.tenant, job_id=job_id), context={"request": request}).data)


class JobFileView(ApiView):
    produces = WORKBOOK_TYPES  # Accept: either workbook type is served (api.negotiation)
    error_codes = errors("job_not_found")

    @extend_schema(
        operation_id="job_file_download",
        tags=["jobs"],
        summary="Download the file of a finished export job",
        responses=binary_response("The workbook (sent as an attachment)."),
    )
    def get(self, request, job_id):
        job = job_get(tenant=self.tenant, job_id=job_id)
        if not job.download_ready:
            raise ApplicationError("job_not_found", "This job has no file to download (yet).", {"job": job.pk})
        return job_file_response(job, content_type=workbook_content_type(request))
