"""Pagination of lists. Page numbers for short lists (books, a user's codes); cursors for the long ones
(codes of a book, redemptions), which never count millions of rows. A bad page or cursor is bad input (400)."""

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination


class PagePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({self.page_query_param: [str(exc.detail)]}) from None


class _Cursor(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

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
