"""The jobs of a book (generate, upload, distribute): each run by its kind's task (books/tasks.py), created with the
book and its tenant, with the input it reads stored beside it."""

from typing import BinaryIO, TypedDict, Unpack

from django.core.files.base import File

from core.actors import Actor
from core.models import Job
from core.services import job_create

from ..models import CouponBook
from ..parsers import UploadShape


class JobInput(TypedDict, total=False):
    """What a job reads besides its book (core.services.job_create's keywords of the same names)."""

    params: dict
    input_file: File
    input_suffix: str


def book_job_create(*, book: CouponBook, kind: str, actor: Actor, total: int, **stored: Unpack[JobInput]) -> Job:
    from ..tasks import BOOK_JOB_TASKS  # the tasks import the services: looked up when a job is made

    return job_create(tenant=book.tenant, book=book, kind=kind, task=BOOK_JOB_TASKS[kind], actor=actor, total=total, **stored)


def file_job_create(
    *, book: CouponBook, kind: str, actor: Actor, file: BinaryIO, shape: UploadShape, params: dict | None = None
) -> Job:
    """A job that reads the uploaded CSV/XLSX itself, too large to parse within a request (its `file_format` in
    params); its total is known once it has read the file."""
    params = {**(params or {}), "file_format": shape.format}
    return book_job_create(
        book=book, kind=kind, actor=actor, total=0, params=params, input_file=File(file), input_suffix=shape.format
    )
