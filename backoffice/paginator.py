"""A paginator for tables of millions of rows: it never counts the whole result.

Django's paginator runs COUNT(*) over the filtered queryset on every page; over millions of codes that is a scan
of the whole index. This one counts at most CAP + 1 rows (COUNT over a LIMITed subquery, a bounded cost whatever
the table size): beyond CAP the changelist says "more than CAP" and offers the first CAP rows' pages; narrowing
the list (a filter or an exact search) gives exact counts again.
"""

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.cap)

    @cached_property
    def counted(self) -> int:
        """Rows counted, up to cap + 1 (so cap + 1 means "more than cap")."""
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.counted > self.cap


class LargeTableAdminMixin:
    """A changelist of a table of millions of rows: no full count (neither of the result nor of the facets), and
    the paginator above."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would COUNT every matching row
    paginator = CappedCountPaginator
