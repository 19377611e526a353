"""The redemption log: list, Excel export, reversal (refund)."""

from rest_framework.response import Response

from books.services.codes import redemption_reverse
from core.downloads import attachment_response
from core.models import Job
from redemptions.exports import export_request
from redemptions.models import Redemption
from redemptions.selectors import RedemptionFilters, redemptions_of_tenant

from ..pagination import RedemptionCursorPagination
from ..schema import WORKBOOK_TYPES, binary_response, errors, operation, workbook_content_type
from ..serializers import JobOutput, RedemptionOutput, RedemptionQuery, ReverseInput
from .base import ApiView


class _RedemptionQueryMixin:
    def filters(self) -> RedemptionFilters:
        query = self.parse(RedemptionQuery, self.request.query_params)
        return RedemptionFilters(
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

    @operation("redemptions_list", "redemptions", parameters=[RedemptionQuery], responses={200: RedemptionOutput(many=True)})
    def get(self, request):
        """The redemption log"""
        page = self.paginate_queryset(redemptions_of_tenant(tenant=self.tenant, filters=self.filters()))
        return self.get_paginated_response(RedemptionOutput(page, many=True).data)


class RedemptionExportView(_RedemptionQueryMixin, ApiView):
    produces = WORKBOOK_TYPES  # Accept: either workbook type is served (api.negotiation)

    @operation(
        "redemptions_export",
        "redemptions",
        parameters=[RedemptionQuery],
        responses={**binary_response("The workbook (sent as an attachment)."), 202: JobOutput},
    )
    def get(self, request):
        """Export the redemption log as an Excel workbook

        Same filters as the list. A small export answers the workbook at once; a large one answers 202 with a job whose
        `download_url` serves the file once it has succeeded.
        """
        result = export_request(tenant=self.tenant, filters=self.filters(), actor=self.actor)
        if isinstance(result, Job):
            return Response(JobOutput(result, context={"request": request}).data, status=202)
        return attachment_response(result.content, filename=result.filename, content_type=workbook_content_type(request))


class RedemptionReverseView(ApiView):
    error_codes = errors("redemption_not_found", "redemption_already_reversed")

    @operation("redemption_reverse", "redemptions", request=ReverseInput, responses={200: RedemptionOutput}, once=True)
    def post(self, request, redemption_id):
        """Reverse a redemption (a refund)

        The use returns to the code; the redemption stays in the log, marked reversed.
        """
        data = self.parse(ReverseInput, request.data)
        redemption = redemption_reverse(
            tenant=self.tenant, redemption_id=redemption_id, actor=self.actor, reason=data.get("reason", "")
        )
        return Response(RedemptionOutput(redemption).data)
