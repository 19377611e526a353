"""File answers: one attachment response for every workbook the service sends (the API's export and job file,
the admin's export and job download)."""

import os

from django.core.files import File
from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def attachment_response(content: bytes | File, *, filename: str, content_type: str = XLSX_CONTENT_TYPE) -> HttpResponse:
    """`content` (bytes built in the request, or an open file streamed from storage) as a download named `filename`."""
    if isinstance(content, bytes):
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
        return response
    return FileResponse(content, as_attachment=True, filename=filename, content_type=content_type)


def job_file_response(job, *, content_type: str = XLSX_CONTENT_TYPE) -> HttpResponse:
    """The file of a job whose download is ready (Job.download_ready), named as stored."""
    return attachment_response(job.file.open("rb"), filename=os.path.basename(job.file.name), content_type=content_type)
