"""Pagination of lists. Page numbers for short lists (books, a user's codes); cursors for the long ones
(codes of a book, redemptions), which never count millions of rows. A bad page or cursor is bad input (400)."""

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

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from None


class CodeCursorPagination(_Cursor):
    ordering = "id"


class RedemptionCursorPagination(_Cursor):
    ordering = ("-redeemed_at", "-id")
