"""Jobs: the status and progress of long work (bulk generation and upload, large exports), and export files."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from core.exceptions import ApplicationError
from core.models import Job
from core.selectors import job_get

from ..schema import errors
from ..serializers import JobOutput
from .base import ApiView
from .redemptions import XLSX


class JobDetailView(ApiView):
    error_codes = errors("job_not_found")

    @extend_schema(tags=["jobs"], summary="A job's status and progress", responses={200: JobOutput})
    def get(self, request, job_id):
        return Response(JobOutput(job_get(tenant=self.tenant, job_id=job_id), context={"request": request}).data)


class JobFileView(ApiView):
    produces = XLSX  # Accept: the workbook type is served (api.negotiation)
    error_codes = errors("job_not_found")

    @extend_schema(
        tags=["jobs"],
        summary="Download the file of a finished export job",
        responses={(200, XLSX): OpenApiResponse(OpenApiTypes.BINARY, description="The workbook.")},
    )
    def get(self, request, job_id):
        job = job_get(tenant=self.tenant, job_id=job_id)
        if job.kind != Job.Kind.EXPORT or job.status != Job.Status.SUCCEEDED or not job.file:
            raise ApplicationError("job_not_found", "This job has no file to download (yet).", {"job": job.pk})
        name = job.file.name.rsplit("/", 1)[-1]
        return FileResponse(job.file.open("rb"), as_attachment=True, filename=name, content_type=XLSX)
