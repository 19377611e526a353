"""Pagination of lists. Page numbers for short lists (books, a user's codes); cursors for the long ones
(codes of a book, redemptions), which never count millions of rows. A bad page, page size or cursor is bad input
(400), never silently replaced by a default: the schema's bounds are the server's."""

from django.core.paginator import EmptyPage
from django.core.paginator import Paginator as DjangoPaginator
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.utils.urls import remove_query_param, replace_query_param

EXAMPLE_BASE = "https://coupons.example.com/api/v1/"


def _page_size(paginator, request) -> int:
    raw = request.query_params.get(paginator.page_size_query_param)
    if raw is None:
        return paginator.page_size
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= paginator.max_page_size):
        raise ValidationError({paginator.page_size_query_param: [f"Use a whole number from 1 to {paginator.max_page_size}."]})
    return int(raw)


def _bounded(parameters: list[dict], bounds: dict[str, dict]) -> list[dict]:
    for parameter in parameters:
        parameter["schema"].update(bounds.get(parameter["name"], {}))
    return parameters


class _PastTheEndPaginator(DjangoPaginator):
    """A page past the last one is empty (200, `results: []`), as a client paging until `next` is null expects;
    Django would raise EmptyPage (DRF's 404)."""

    def validate_number(self, number):
        try:
            return super().validate_number(number)
        except EmptyPage:
            if int(number) > 1:
                return int(number)
            raise


class PagePagination(PageNumberPagination):
    django_paginator_class = _PastTheEndPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        return _page_size(self, request)

    def paginate_queryset(self, queryset, request, view=None):
        page = request.query_params.get(self.page_query_param)
        if page is not None and not (page.isascii() and page.isdigit() and int(page) >= 1):
            raise ValidationError({self.page_query_param: ["Use a page number from 1 up."]})
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({self.page_query_param: [str(exc.detail)]}) from None

    def get_previous_link(self):
        if self.page.number > self.page.paginator.num_pages > 0:
            # Past the end: the way back is the last page.
            url = self.request.build_absolute_uri()
            if self.page.paginator.num_pages == 1:
                return remove_query_param(url, self.page_query_param)
            return replace_query_param(url, self.page_query_param, self.page.paginator.num_pages)
        return super().get_previous_link()

    def get_schema_operation_parameters(self, view):
        return _bounded(
            super().get_schema_operation_parameters(view),
            {"page": {"minimum": 1}, "page_size": {"minimum": 1, "maximum": self.max_page_size}},
        )

    def get_paginated_response_schema(self, schema):
        # DRF's own examples name api.example.org/accounts; these name a list of this API.
        page = super().get_paginated_response_schema(schema)
        properties = page["properties"]
        properties["count"]["example"] = 120
        properties["next"]["example"] = f"{EXAMPLE_BASE}books/?page=3&page_size=50"
        properties["previous"]["example"] = f"{EXAMPLE_BASE}books/?page=1&page_size=50"
        page["required"] = list(properties)  # every key is always there (next and previous may be null)
        return page


class _Cursor(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        return _page_size(self, request)

    def position_valid(self, position: str) -> bool:
        raise NotImplementedError

    def decode_cursor(self, request):
        # A cursor is caller input: its position is checked here, before it reaches a query as a value of the
        # ordering field (where a malformed one would fail inside the database).
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            cursor = False
        if cursor is False or (cursor is not None and cursor.position is not None and not self.position_valid(cursor.position)):
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]})
        return cursor

    def get_schema_operation_parameters(self, view):
        return _bounded(
            super().get_schema_operation_parameters(view),
            {"page_size": {"minimum": 1, "maximum": self.max_page_size}},
        )

    def get_paginated_response_schema(self, schema):
        page = super().get_paginated_response_schema(schema)
        properties = page["properties"]
        properties["next"]["example"] = f"{EXAMPLE_BASE}redemptions/?cursor=cD0yMDI2LTAzLTE0KzA5JTNBMzA%3D"
        properties["previous"]["example"] = f"{EXAMPLE_BASE}redemptions/?cursor=cj0xJnA9MjAyNi0wMy0xNQ%3D%3D"
        page["required"] = list(properties)
        return page


class CodeCursorPagination(_Cursor):
    ordering = "id"

    def position_valid(self, position: str) -> bool:
        return position.isascii() and position.isdigit() and int(position) < 2**63


class RedemptionCursorPagination(_Cursor):
    ordering = ("-redeemed_at", "-id")

    def position_valid(self, position: str) -> bool:
        try:
            return len(position) <= 64 and parse_datetime(position) is not None
        except ValueError:
            return False
