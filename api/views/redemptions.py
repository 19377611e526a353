"""The redemption log: list, Excel export, reversal (refund)."""

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from books.services.codes import redemption_reverse
from core.models import Job
from redemptions.exports import export_request
from redemptions.models import Redemption
from redemptions.selectors import redemptions_of_tenant

from .. import examples
from ..idempotency import idempotent
from ..pagination import RedemptionCursorPagination
from ..schema import WORKBOOK_TYPES, binary_response, errors, workbook_content_type
from ..serializers import JobOutput, RedemptionOutput, RedemptionQuery, ReverseInput
from .base import ApiView


class _RedemptionQueryMixin:
    def redemptions(self):
        query = self.parse(RedemptionQuery, self.request.query_params)
        return redemptions_of_tenant(
            tenant=self.tenant,
            book_id=query.get("book"),
            user_id=query.get("user_id"),
            since=query.get("from"),
            until=query.get("to"),
            reversed=query.get("reversed"),
        )


class RedemptionListView(_RedemptionQueryMixin, ApiView):
    pagination_class = RedemptionCursorPagination
    serializer_class = RedemptionOutput
    queryset = Redemption.objects.none()  # for the schema; requests use the selector

    @extend_schema(
        operation_id="redemptions_list",
        tags=["redemptions"],
        summary="The redemption log",
        parameters=[RedemptionQuery],
        responses={200: RedemptionOutput(many=True)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.redemptions())
        return self.get_paginated_response(RedemptionOutput(page, many=True).data)


class RedemptionExportView(_RedemptionQueryMixin, ApiView):
    produces = WORKBOOK_TYPES  # Accept: either workbook type is served (api.negotiation)

    @extend_schema(
        operation_id="redemptions_export",
        tags=["redemptions"],
        summary="Export the redemption log as an Excel workbook",
        description="Same filters as the list. A small export answers the workbook at once; a large one answers "
        "202 with a job whose `download_url` serves the file once it has succeeded.",
        parameters=[RedemptionQuery],
        responses={**binary_response("The workbook (sent as an attachment)."), 202: JobOutput},
    )
    def get(self, request):
        result = export_request(tenant=self.tenant, queryset=self.redemptions(), actor=self.actor)
        if isinstance(result, Job):
            return Response(JobOutput(result, context={"request": request}).data, status=202)
        response = HttpResponse(result.content, content_type=workbook_content_type(request))
        response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
        return response


class RedemptionReverseView(ApiView):
    idempotent = True
    error_codes = errors("redemption_not_found", "redemption_already_reversed")

    @extend_schema(
        operation_id="redemption_reverse",
        examples=examples.REVERSE,
        tags=["redemptions"],
        summary="Reverse a redemption (a refund)",
        description="The use returns to the code; the redemption stays in the log, marked reversed.",
        request=ReverseInput,
        responses={200: RedemptionOutput},
    )
    def post(self, request, redemption_id):
        data = self.parse(ReverseInput, request.data)

        def run(key):
            redemption = redemption_reverse(
                tenant=self.tenant, redemption_id=redemption_id, actor=self.actor, reason=data.get("reason", "")
            )
            return Response(RedemptionOutput(redemption).data)

        return idempotent(request, run)
