"""List filters of the back office: a period in the tenant's own calendar, a free-text exact filter, yes/no."""

from datetime import datetime, time, timedelta

from django.contrib import admin
from django.utils import timezone


def _local_midnight(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class PeriodFilter(admin.SimpleListFilter):
    """Calendar periods in the tenant's time zone (the admin renders each page in it)."""

    title = "period"
    parameter_name = "period"
    field = "redeemed_at"

    def lookups(self, request, model_admin):
        return (
            ("today", "Today"),
            ("yesterday", "Yesterday"),
            ("7d", "Last 7 days"),
            ("this_month", "This month"),
            ("last_month", "Last month"),
            ("this_year", "This year"),
            ("last_year", "Last year"),
        )

    def bounds(self, value: str) -> tuple[datetime, datetime] | None:
        today = timezone.localdate()
        first_of_month = today.replace(day=1)
        spans = {
            "today": (today, today + timedelta(days=1)),
            "yesterday": (today - timedelta(days=1), today),
            "7d": (today - timedelta(days=6), today + timedelta(days=1)),
            "this_month": (first_of_month, (first_of_month + timedelta(days=32)).replace(day=1)),
            "last_month": ((first_of_month - timedelta(days=1)).replace(day=1), first_of_month),
            "this_year": (today.replace(month=1, day=1), today.replace(year=today.year + 1, month=1, day=1)),
            "last_year": (today.replace(year=today.year - 1, month=1, day=1), today.replace(month=1, day=1)),
        }
        span = spans.get(value)
        return (_local_midnight(span[0]), _local_midnight(span[1])) if span else None

    def queryset(self, request, queryset):
        span = self.bounds(self.value() or "")
        if span is None:
            return queryset
        return queryset.filter(**{f"{self.field}__gte": span[0], f"{self.field}__lt": span[1]})


class ExactTextFilter(admin.ListFilter):
    """A text box that filters on one field by exact value (an index look-up, never a LIKE scan)."""

    template = "admin/backoffice/text_filter.html"
    parameter_name = ""
    field = ""

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        value = params.pop(self.parameter_name, None)
        if isinstance(value, list):
            value = value[-1]
        self.value = (value or "").strip()
        if self.value:
            self.used_parameters[self.parameter_name] = self.value

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.parameter_name]

    def queryset(self, request, queryset):
        if self.value:
            return queryset.filter(**{self.field: self.value})
        return queryset

    def choices(self, changelist):
        kept = [
            (key, value)
            for key, values in changelist.params.items()
            if key not in (self.parameter_name, "p")
            for value in (values if isinstance(values, list) else [values])
        ]
        yield {
            "selected": not self.value,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
            "parameter_name": self.parameter_name,
            "value": self.value,
            "kept": kept,
        }


class UserIdFilter(ExactTextFilter):
    title = "end user id"
    parameter_name = "user_id"
    field = "user_id"


class ReversedFilter(admin.SimpleListFilter):
    title = "reversed"
    parameter_name = "reversed"

    def lookups(self, request, model_admin):
        return (("yes", "Reversed"), ("no", "Not reversed"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(reversed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(reversed_at__isnull=True)
        return queryset
