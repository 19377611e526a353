"""django-filter filter sets of the list endpoints."""

from datetime import datetime, time, timedelta

import django_filters
from django.db.models import Q
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

from books.inputs import clean_day
from books.models import Code, CouponBook
from core.exceptions import ApplicationError


class BookFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CouponBook.Status.choices)
    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Words in the name or description.")
    active_on = django_filters.DateFilter(
        method="filter_active_on", help_text="Books active on this day (the tenant's time zone): status active and valid then."
    )

    class Meta:
        model = CouponBook
        fields = ["status"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))

    def filter_active_on(self, queryset, name, value):
        try:
            clean_day(value, field="active_on")
        except ApplicationError as exc:
            raise ValidationError({"active_on": [exc.message]}) from None
        tz = self.request.user.tenant.zoneinfo if self.request is not None else timezone.get_current_timezone()
        start = timezone.make_aware(datetime.combine(value, time.min), tz)
        end = start + timedelta(days=1)
        return queryset.filter(
            Q(status=CouponBook.Status.ACTIVE),
            Q(valid_from__isnull=True) | Q(valid_from__lt=end),
            Q(valid_until__isnull=True) | Q(valid_until__gt=start),
        )


class CodeFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=Code.State.choices)
    user_id = django_filters.CharFilter(max_length=255)

    class Meta:
        model = Code
        fields = ["state", "user_id"]


class StrictOrderingFilter(OrderingFilter):
    """`ordering`: one of the view's `ordering_fields`, `-` for descending; anything else is refused (400),
    where DRF would silently ignore it. The schema lists the choices as an enum. Several fields, comma-separated,
    are accepted too (`status,-created_at`)."""

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw is None:
            return self.get_default_ordering(view)
        allowed = self.choices(view)
        fields = [part.strip() for part in raw.split(",")]
        if not all(field in allowed for field in fields):
            raise ValidationError({self.ordering_param: [f"Use one of: {', '.join(allowed)}."]})
        return fields

    @staticmethod
    def choices(view) -> list[str]:
        return [f"{sign}{field}" for field in view.ordering_fields for sign in ("", "-")]

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "The order of the list: a field, `-` in front for descending.",
                "schema": {"type": "string", "enum": self.choices(view)},
            }
        ]
