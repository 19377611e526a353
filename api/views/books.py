"""Coupon books: CRUD, statistics, code generation and upload, the book's codes, random assignment, distribution."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from books.models import CouponBook
from books.rules import BOOK_ASSIGNABLE_RULES
from books.selectors import book_get, book_limits_usage, book_stats, books_of_tenant, codes_of_book
from books.services.books import book_archive, book_create, book_update
from books.services.code_creation import CreationResult, generation_request, upload_file_request, upload_request
from books.services.codes import code_assign_random
from books.services.distribution import DistributionResult, distribution_file_request, distribution_request

from ..filters import BookFilter, CodeFilter, StrictOrderingFilter
from ..pagination import CodeCursorPagination, PagePagination
from ..parsers import ApiJSONParser
from ..schema import errors, operation
from ..serializers import (
    AssignInput,
    BookInput,
    BookOutput,
    BookStatsOutput,
    CodeOutput,
    CreationOutput,
    DistributeFileInput,
    DistributeJsonInput,
    DistributionOutput,
    GenerateInput,
    JobOutput,
    UploadFileInput,
    UploadJsonInput,
)
from .base import ApiView


def creation_response(result, request) -> Response:
    """201 with what was created, or 202 with the job that will do it."""
    if isinstance(result, CreationResult):
        body = {
            "created": result.created,
            "warnings": result.warnings,
            "skipped": result.skipped,
            "skipped_count": result.skipped_count,
        }
        return Response(CreationOutput(body).data, status=201)
    return Response(JobOutput(result, context={"request": request}).data, status=202)


class BookListView(ApiView):
    pagination_class = PagePagination
    serializer_class = BookOutput
    filter_backends = [*ApiView.filter_backends, StrictOrderingFilter]
    filterset_class = BookFilter
    ordering_fields = ["name", "created_at", "updated_at", "status", "valid_from", "valid_until"]
    ordering = ["-created_at", "-id"]

    queryset = CouponBook.objects.none()  # for the schema; requests use the selector

    def get_queryset(self):
        return books_of_tenant(tenant=self.tenant)

    @operation("books_list", "books", responses={200: BookOutput(many=True)})
    def get(self, request):
        """List coupon books"""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(BookOutput(page, many=True).data)

    @operation("book_create", "books", request=BookInput, responses={201: BookOutput}, once=True)
    def post(self, request):
        """Create a coupon book"""
        data = self.parse(BookInput, request.data)
        return Response(BookOutput(book_create(tenant=self.tenant, **data)).data, status=201)


class BookDetailView(ApiView):
    error_codes = {
        "GET": errors("book_not_found"),
        "PATCH": errors("book_not_found", "book_archived", "uses_below_redemptions"),
        "DELETE": errors("book_not_found"),
    }

    @operation("book_get", "books", responses={200: BookOutput})
    def get(self, request, book_id):
        """A coupon book"""
        return Response(BookOutput(book_get(tenant=self.tenant, book_id=book_id)).data)

    @operation("book_update", "books", request=BookInput(partial=True), responses={200: BookOutput})
    def patch(self, request, book_id):
        """Change a coupon book"""
        book = book_get(tenant=self.tenant, book_id=book_id)
        serializer = BookInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(BookOutput(book_update(book=book, **serializer.validated_data)).data)

    @operation("book_delete", "books", responses={200: BookOutput, 204: OpenApiResponse(description="Deleted.")})
    def delete(self, request, book_id):
        """Delete (or archive) a coupon book

        A book that has codes or history is archived (200 with the book); one that never had any is deleted (204).
        """
        archived = book_archive(book=book_get(tenant=self.tenant, book_id=book_id))
        if archived is None:
            return Response(status=204)
        return Response(BookOutput(archived).data)


class BookStatsView(ApiView):
    error_codes = errors("book_not_found")

    @operation("book_stats", "books", responses={200: BookStatsOutput})
    def get(self, request, book_id):
        """Counts by state, redemptions per day, and the campaign limits' use"""
        book = book_get(tenant=self.tenant, book_id=book_id)
        return Response(BookStatsOutput({**book_stats(book=book), "limits": book_limits_usage(book=book)}).data)


class CodesGenerateView(ApiView):
    error_codes = errors(
        "book_not_found",
        "invalid_pattern",
        "pattern_no_random_symbol",
        "pattern_space_too_small",
        "book_archived",
        "generation_collisions",
    )

    @operation(
        "codes_generate",
        "codes",
        description=f"Up to {settings.COUPONS['SYNC_CODES_LIMIT']:,} codes answer 201 at once; more answer 202 with the job.",
        request=GenerateInput,
        responses={201: CreationOutput, 202: JobOutput},
        once=True,
    )
    def post(self, request, book_id):
        """Generate random codes"""
        data = self.parse(GenerateInput, request.data)
        book = book_get(tenant=self.tenant, book_id=book_id)
        result = generation_request(
            book=book, count=data["count"], pattern=data.get("pattern"), charset=data.get("charset"), actor=self.actor
        )
        return creation_response(result, request)


class CodesUploadView(ApiView):
    parser_classes = [ApiJSONParser, MultiPartParser, FormParser]
    error_codes = errors("book_not_found", "invalid_codes", "empty_upload", "duplicate_codes", "book_archived")

    @operation(
        "codes_upload",
        "codes",
        request={"application/json": UploadJsonInput, "multipart/form-data": UploadFileInput},
        responses={201: CreationOutput, 202: JobOutput},
        once=True,
    )
    def post(self, request, book_id):
        # The book first: nothing of a file is read for a book the caller cannot upload into.
        """Upload codes (JSON list, or a CSV/XLSX file)

        A JSON body `{codes: [...]}` or a multipart `file` (CSV or XLSX, codes in the first column, an optional header
        `code`). Duplicates (in the upload or already stored) refuse the whole upload (409 duplicate_codes, listing them)
        unless `skip_duplicates` is true. Large uploads answer 202 with the job.
        """
        book = book_get(tenant=self.tenant, book_id=book_id)
        if request.content_type.startswith("multipart/") or request.content_type.startswith("application/x-www-form"):
            data = self.parse(UploadFileInput, request.data)
            upload = data["file"]
            result = upload_file_request(
                book=book, file=upload, filename=upload.name or "", actor=self.actor, skip_duplicates=data["skip_duplicates"]
            )
        else:
            data = self.parse(UploadJsonInput, request.data)
            result = upload_request(book=book, codes=data["codes"], actor=self.actor, skip_duplicates=data["skip_duplicates"])
        return creation_response(result, request)


class BookCodesView(ApiView):
    pagination_class = CodeCursorPagination
    serializer_class = CodeOutput
    filterset_class = CodeFilter
    error_codes = errors("book_not_found")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CodeOutput.Meta.model.objects.none()
        return codes_of_book(book=book_get(tenant=self.tenant, book_id=self.kwargs["book_id"]))

    @operation("book_codes_list", "codes", responses={200: CodeOutput(many=True)})
    def get(self, request, book_id):
        """The codes of a book"""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(CodeOutput(page, many=True).data)


class BookAssignView(ApiView):
    error_codes = errors("book_not_found", "book_exhausted", "user_code_limit_reached", *BOOK_ASSIGNABLE_RULES)

    @operation(
        "code_assign_random", "assignment", request=AssignInput, responses={201: CodeOutput}, once=True, one_transaction=True
    )
    def post(self, request, book_id):
        """Assign a random free code of the book to a user"""
        data = self.parse(AssignInput, request.data)
        code = code_assign_random(tenant=self.tenant, book_id=book_id, user_id=data["user_id"], actor=self.actor)
        return Response(CodeOutput.render(code), status=201)


def distribution_response(result, request) -> Response:
    """201 with the summary and every row, or 202 with the job whose file is the CSV `user_id,code,status`."""
    if isinstance(result, DistributionResult):
        rows = [{"user_id": user_id, "code": code or None, "status": status} for user_id, code, status in result.rows]
        return Response(DistributionOutput({**result.summary, "rows": rows}).data, status=201)
    return Response(JobOutput(result, context={"request": request}).data, status=202)


class BookDistributeView(ApiView):
    parser_classes = [ApiJSONParser, MultiPartParser, FormParser]
    error_codes = errors("book_not_found", "book_exhausted", "empty_upload", *BOOK_ASSIGNABLE_RULES)

    @operation(
        "book_distribute",
        "assignment",
        description="A JSON body `{user_ids: [...]}` or a multipart `file` (CSV or XLSX, ids in the column headed "
        f"`user_id`, else the first), at most {settings.COUPONS['MAX_DISTRIBUTION_USERS']:,} ids. Each user who holds "
        "no code of the book gets one; one who holds a code keeps it (`already_assigned`), so the same list twice "
        "assigns nothing new. An invalid id is reported in its row (`invalid_user_id`); too few free codes refuse "
        "the whole list (409 book_exhausted) before anything is assigned. Up to "
        f"{settings.COUPONS['SYNC_DISTRIBUTION_LIMIT']:,} ids answer 201 with every row; more answer 202 with the "
        "job, whose `download_url` serves the CSV `user_id,code,status` once it has succeeded.",
        request={"application/json": DistributeJsonInput, "multipart/form-data": DistributeFileInput},
        responses={201: DistributionOutput, 202: JobOutput},
        once=True,
    )
    def post(self, request, book_id):
        # The book first: nothing of a file is read for a book the caller cannot distribute from.
        """Give one code of the book to each user of a list (JSON, or a CSV/XLSX file)"""
        book = book_get(tenant=self.tenant, book_id=book_id)
        if request.content_type.startswith("multipart/") or request.content_type.startswith("application/x-www-form"):
            upload = self.parse(DistributeFileInput, request.data)["file"]
            result = distribution_file_request(book=book, file=upload, filename=upload.name or "", actor=self.actor)
            return distribution_response(result, request)
        data = self.parse(DistributeJsonInput, request.data)
        return distribution_response(distribution_request(book=book, user_ids=data["user_ids"], actor=self.actor), request)
