"""Input and output shapes of the API. Inputs only parse and type-check; the services apply the rules."""

from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from books.inputs import MAX_USER_ID_LENGTH, clean_currency, clean_day, clean_moment, clean_order_currency
from books.models import Code, CouponBook, Reservation
from books.rules import ORDER_RULES, USE_RULES
from books.services.books import EDITABLE_FIELDS
from core.exceptions import ApplicationError
from core.models import Job
from redemptions.models import OUTCOME_FIELDS, Redemption

from .inputs import MAX_SIGNING_KEY_LENGTH, MIN_HS256_SECRET, key_material_clean
from .models import EndUserSigningKey
from .schema import ErrorBody, TextList

MAX_CODES = settings.COUPONS["MAX_CODES_PER_REQUEST"]
MAX_DISTRIBUTION_USERS = settings.COUPONS["MAX_DISTRIBUTION_USERS"]
TTL_MIN, TTL_MAX = settings.COUPONS["LOCK_TTL_MIN"], settings.COUPONS["LOCK_TTL_MAX"]
LIMIT_MAX = 2_000_000_000


class StrictCharField(serializers.CharField):
    """A string and only a string: DRF's CharField would turn 5 or 3.5 into "5" and "3.5"."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDecimalField(serializers.DecimalField):
    """A decimal, never an empty string (DRF reads "" as null where null is allowed; the schema's pattern does not)."""

    def validate_empty_values(self, data):
        if isinstance(data, str) and not data.strip():
            self.fail("invalid")
        return super().validate_empty_values(data)


# A shape of the checkout endpoints, built once per class instead of once per request. DRF builds a serializer's
# fields for every instance, and a ModelSerializer reads its model's fields each time: 350 to 820 us per answer of
# assign, lock and redeem on this machine (about 1.5 ms of each checkout cycle), against 20 to 45 us with the fields
# built once (README "Performance"). Only for shapes whose fields read no per-request context: the prototype is
# shared by every request of the process. (A comment, not a docstring: the schema would take it as the description
# of every shape that uses it.)
class Prebuilt:
    @classmethod
    def prototype(cls):
        prototype = cls.__dict__.get("_prototype")
        if prototype is None:
            prototype = cls()
            prototype.fields  # noqa: B018 - built now, once
            cls._prototype = prototype
        return prototype

    @classmethod
    def render(cls, instance) -> dict:
        """What `cls(instance).data` gives, without building the fields again."""
        return cls.prototype().to_representation(instance)


class CurrencyField(StrictCharField):
    """An ISO 4217 currency code as the service takes it: three upper-case letters (the schema gives the pattern)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The order's currency (ISO 4217, e.g. EUR). Required with `amount`.")
        super().__init__(min_length=3, max_length=3, **kwargs)
        self.validators.append(RegexValidator(r"^[A-Z]{3}$", "Use an ISO 4217 code: three upper-case letters, e.g. EUR."))


def user_id_field(**kwargs) -> serializers.CharField:
    return StrictCharField(max_length=MAX_USER_ID_LENGTH, **kwargs)


def campaign_amount_field(*, help_text: str) -> StrictDecimalField:
    """A book's optional campaign limit in money (null or absent: none). Which ones must be above 0 is the book's
    rule (books.services.books), so every one takes 0 here."""
    return StrictDecimalField(max_digits=12, decimal_places=2, min_value=0, allow_null=True, required=False, help_text=help_text)


# --- Auth -----------------------------------------------------------------------------------------------------


class TokenObtainInput(serializers.Serializer):
    client_id = StrictCharField(max_length=64)
    client_secret = StrictCharField(max_length=256, trim_whitespace=False)


class TokenPairOutput(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds the access token is valid for.")


class TokenRefreshInput(serializers.Serializer):
    refresh = StrictCharField(max_length=4096)


class AccessTokenOutput(serializers.Serializer):
    access = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()


class SigningKeyInput(serializers.Serializer):
    name = StrictCharField(max_length=200)
    algorithm = serializers.ChoiceField(choices=EndUserSigningKey.Algorithm.choices)
    key = StrictCharField(
        min_length=MIN_HS256_SECRET,
        max_length=MAX_SIGNING_KEY_LENGTH,
        trim_whitespace=False,
        help_text=f"The HS256 secret ({MIN_HS256_SECRET} characters or more) or the RS256 public key (PEM).",
    )

    def validate(self, attrs: dict) -> dict:
        return {**attrs, "key": key_material_clean(algorithm=attrs["algorithm"], key=attrs["key"])}


class SigningKeyOutput(serializers.ModelSerializer):
    class Meta:
        model = EndUserSigningKey
        fields = ["kid", "name", "algorithm", "is_active", "created_at", "revoked_at"]
        read_only_fields = fields


# --- Books ----------------------------------------------------------------------------------------------------


class BookInput(serializers.Serializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(max_length=5000, allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=CouponBook.Status.choices, required=False)
    discount_type = serializers.ChoiceField(choices=CouponBook.DiscountType.choices, required=False)
    discount_value = StrictDecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)
    currency = StrictCharField(max_length=3, allow_blank=True, required=False)
    product_ids = serializers.ListField(
        child=StrictCharField(max_length=255), max_length=10_000, required=False, help_text="Empty: every product."
    )
    valid_from = serializers.DateTimeField(allow_null=True, required=False)
    valid_until = serializers.DateTimeField(allow_null=True, required=False)
    max_codes_per_user = serializers.IntegerField(min_value=1, max_value=LIMIT_MAX, allow_null=True, required=False)
    max_redemptions_per_user = serializers.IntegerField(min_value=1, max_value=LIMIT_MAX, allow_null=True, required=False)
    uses_per_code = serializers.IntegerField(min_value=1, max_value=LIMIT_MAX, allow_null=True, required=False)
    requires_assignment = serializers.BooleanField(required=False)
    lock_ttl_seconds = serializers.IntegerField(min_value=TTL_MIN, max_value=TTL_MAX, required=False)
    max_redemptions = serializers.IntegerField(
        min_value=1, max_value=LIMIT_MAX, allow_null=True, required=False, help_text="Standing redemptions of the whole book."
    )
    budget_amount = campaign_amount_field(
        help_text="Total standing discount the book may give, in its `currency` (then required); above 0."
    )
    min_order_amount = campaign_amount_field(help_text="Smaller orders get no discount.")
    max_discount_amount = campaign_amount_field(help_text="Caps a percent discount per order; above 0.")

    # The rules DRF's fields do not know, from books.inputs (the admin's book form calls the same ones).
    def validate_currency(self, value: str) -> str:
        return clean_currency(value)

    def validate_valid_from(self, value: datetime | None) -> datetime | None:
        return None if value is None else clean_moment(value, field="valid_from")

    def validate_valid_until(self, value: datetime | None) -> datetime | None:
        return None if value is None else clean_moment(value, field="valid_until")


class BookOutput(serializers.ModelSerializer):
    product_ids = TextList(read_only=True)

    class Meta:
        model = CouponBook
        # The service's editable fields, so the API shows exactly what it lets a caller change.
        fields = ["id", *EDITABLE_FIELDS, "created_at", "updated_at"]


class CodeCountsOutput(serializers.Serializer):
    free = serializers.IntegerField()
    assigned = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    voided = serializers.IntegerField()
    total = serializers.IntegerField()


class MoneyOutput(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217; empty for redemptions stored before they had a currency.")
    discount = serializers.DecimalField(max_digits=16, decimal_places=2)


@extend_schema_field(MoneyOutput(many=True))
class MoneyTotalsField(serializers.Field):
    """Totals per currency ({currency: amount}, as the selectors give them) as a list, one item per currency."""

    def to_representation(self, value):
        return MoneyOutput([{"currency": c, "discount": d} for c, d in value.items()], many=True).data


class StatsDayOutput(serializers.Serializer):
    day = serializers.DateField()
    redemptions = serializers.IntegerField()
    discounts = MoneyTotalsField(help_text="Discount given that day, per currency.")


class BookLimitsOutput(serializers.Serializer):
    max_redemptions = serializers.IntegerField(allow_null=True)
    redemptions = serializers.IntegerField(help_text="Standing redemptions counted against max_redemptions.")
    budget_amount = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    discount = serializers.DecimalField(max_digits=16, decimal_places=2, help_text="Standing discount given.")
    held = serializers.IntegerField(help_text="Active reservations: each counts against the limits while it holds.")
    held_discount = serializers.DecimalField(max_digits=16, decimal_places=2, help_text="What they hold of the budget.")
    budget_left = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)


class BookStatsOutput(serializers.Serializer):
    codes = CodeCountsOutput()
    active_reservations = serializers.IntegerField()
    redemptions = serializers.IntegerField(help_text="Standing (not reversed) redemptions.")
    reversed = serializers.IntegerField()
    discount_totals = MoneyTotalsField(
        help_text="Discount given by the standing redemptions, per currency (never summed across currencies)."
    )
    per_day = StatsDayOutput(many=True, help_text="Redemptions per day (tenant's time zone), the last 366 days.")
    limits = BookLimitsOutput(allow_null=True, help_text="The book-wide campaign limits and their use; null without any.")


class GenerateInput(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=MAX_CODES)
    pattern = StrictCharField(
        max_length=64, required=False, allow_blank=True, help_text="# a digit, ? a letter, * a charset symbol; default 10 *."
    )
    charset = StrictCharField(max_length=64, required=False, allow_blank=True)


class CreationOutput(serializers.Serializer):
    created = serializers.IntegerField()
    warnings = TextList()
    skipped = TextList(help_text="Duplicates skipped (the first 100).")
    skipped_count = serializers.IntegerField()


class UploadJsonInput(serializers.Serializer):
    codes = serializers.ListField(
        child=StrictCharField(max_length=200, allow_blank=True, trim_whitespace=False), min_length=1, max_length=MAX_CODES
    )
    skip_duplicates = serializers.BooleanField(default=False)


class UploadFileInput(serializers.Serializer):
    file = serializers.FileField(help_text="CSV or XLSX: codes in the first column, an optional header `code`.")
    skip_duplicates = serializers.BooleanField(default=False)


class DistributeJsonInput(serializers.Serializer):
    user_ids = serializers.ListField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False),
        min_length=1,
        max_length=MAX_DISTRIBUTION_USERS,
        help_text="End-user ids. An empty, over-long (255) or non-printable id is reported `invalid_user_id`; "
        "repeats collapse to one.",
    )


class DistributeFileInput(serializers.Serializer):
    file = serializers.FileField(help_text="CSV or XLSX: user ids in the column headed `user_id`, else the first column.")


class DistributionRowOutput(serializers.Serializer):
    user_id = serializers.CharField()
    code = serializers.CharField(allow_null=True, help_text="Null for an invalid user id.")
    status = serializers.ChoiceField(choices=["assigned", "already_assigned", "invalid_user_id"])


class DistributionOutput(serializers.Serializer):
    total = serializers.IntegerField(help_text="Rows of the result: one per distinct id of the list.")
    assigned = serializers.IntegerField(help_text="Users given a code now.")
    already_assigned = serializers.IntegerField(help_text="Users who held a code of the book: they keep it.")
    invalid = serializers.IntegerField(help_text="Rows that are no valid user id.")
    duplicates = serializers.IntegerField(help_text="Repeated ids collapsed into one row.")
    rows = DistributionRowOutput(many=True, help_text="`user_id,code,status` per distinct id, in the list's order.")


# --- Codes ----------------------------------------------------------------------------------------------------


class CodeOutput(Prebuilt, serializers.ModelSerializer):
    uses_left = serializers.IntegerField(allow_null=True, read_only=True, help_text="Null: unlimited.")

    class Meta:
        model = Code
        fields = [
            "code",
            "book",
            "state",
            "user_id",
            "assigned_at",
            "max_uses",
            "redeemed_count",
            "uses_left",
            "expires_at",
            "created_at",
        ]


class AssignInput(Prebuilt, serializers.Serializer):
    user_id = user_id_field()


USER_ID_HELP = "The customer. An end user's token may name only its own `sub` (or leave it out: it is the `sub`)."


class LockInput(Prebuilt, serializers.Serializer):
    user_id = user_id_field(help_text=USER_ID_HELP)
    ttl_seconds = serializers.IntegerField(min_value=TTL_MIN, max_value=TTL_MAX, required=False, allow_null=True)


class ReservationOutput(Prebuilt, serializers.ModelSerializer):
    code = serializers.CharField(source="code.code")

    class Meta:
        model = Reservation
        fields = ["token", "expires_at", "code", "user_id"]


class UnlockInput(Prebuilt, serializers.Serializer):
    user_id = user_id_field(help_text=USER_ID_HELP)
    token = StrictCharField(max_length=64, required=False, allow_blank=True, help_text="Without it: all the user's holds.")


class UnlockOutput(serializers.Serializer):
    released = serializers.IntegerField(help_text="How many reservations were released.")


class OrderMoneyInput(serializers.Serializer):
    """An order's `amount` and `currency`: the currency is required with an amount (books.inputs)."""

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        attrs["currency"] = clean_order_currency(attrs.get("currency", ""), amount=attrs.get("amount"))
        return attrs


class RedeemInput(Prebuilt, OrderMoneyInput):
    user_id = user_id_field(help_text=USER_ID_HELP)
    token = StrictCharField(max_length=64, required=False, allow_blank=True, help_text="The lock's token, if locked.")
    order_ref = StrictCharField(max_length=255, required=False, allow_blank=True)
    amount = StrictDecimalField(max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True)
    currency = CurrencyField(required=False)
    product_id = StrictCharField(max_length=255, required=False, allow_blank=True)


class ValidateQuery(Prebuilt, OrderMoneyInput):
    user_id = user_id_field(help_text=USER_ID_HELP)
    amount = StrictDecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)
    currency = CurrencyField(required=False)
    product_id = StrictCharField(max_length=255, required=False, allow_blank=True)


# What validate answers as `reason`: `ok`, or the code of the rule a redeem would break now.
VALIDATION_REASONS = ["ok", *USE_RULES, *ORDER_RULES]


class ValidationOutput(Prebuilt, serializers.Serializer):
    valid = serializers.BooleanField()
    reason = serializers.ChoiceField(
        choices=VALIDATION_REASONS, help_text="`ok`, or the error code a redeem would answer with now."
    )
    message = serializers.CharField()
    discount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    currency = serializers.CharField(help_text="The discount's currency: the one sent, else the book's; empty if none.")


class UserCodesQuery(serializers.Serializer):
    book = serializers.IntegerField(min_value=1, required=False)


# --- Redemptions ----------------------------------------------------------------------------------------------


class RedemptionOutput(Prebuilt, serializers.ModelSerializer):
    code = serializers.CharField(source="code.code")
    reversed = serializers.BooleanField(source="is_reversed")
    currency = serializers.CharField(
        read_only=True,
        help_text="ISO 4217: the order's, which `amount` and `discount` are in (the book's when none was sent); "
        "empty when not known.",
    )

    class Meta:
        model = Redemption
        fields = [
            "id",
            "code",
            "book",
            "user_id",
            "redeemed_at",
            "order_ref",
            "amount",
            "product_id",
            *OUTCOME_FIELDS,
            "reversed_by_type",
            "reversed_by_id",
        ]


# Years the filter accepts (MIN_YEAR to MAX_YEAR), as the schema's patterns say it.
_YEAR = r"(?!0000|0001|9999)[0-9]{4}"


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string", "format": "date", "pattern": rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}$"},
            {"type": "string", "format": "date-time", "pattern": rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[T ]"},
        ]
    }
)
class PeriodBoundField(serializers.Field):
    """A date (YYYY-MM-DD, a whole day in the tenant's time zone) or an ISO 8601 date and time."""

    default_error_messages = {"invalid": "Use a date (YYYY-MM-DD) or an ISO 8601 date and time."}

    def __init__(self, *, end: bool, **kwargs):
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) > 64:
            self.fail("invalid")
        parsed_dt = serializers.DateTimeField().run_validation if "T" in data or " " in data.strip() else None
        try:
            if parsed_dt is not None:
                return clean_moment(parsed_dt(data), field=self.field_name)
            day = clean_day(serializers.DateField().run_validation(data), field=self.field_name)
        except (serializers.ValidationError, ApplicationError):
            self.fail("invalid")
        tz = self.context["tenant"].zoneinfo
        if self.end:
            # An end date includes its whole day: the period runs to the next midnight.
            day = day + timedelta(days=1)
        return timezone.make_aware(datetime.combine(day, time.min), tz)

    def to_representation(self, value):  # pragma: no cover - input only
        return value.isoformat()


class QueryBooleanField(serializers.BooleanField):
    """A boolean filter: left out, it filters nothing (DRF reads a boolean missing from a form as false)."""

    default_empty_html = serializers.empty


class RedemptionQuery(serializers.Serializer):
    book = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    user_id = user_id_field(required=False)
    from_ = PeriodBoundField(end=False, required=False, help_text="Inclusive start: a date or a date and time.")
    to = PeriodBoundField(
        end=True, required=False, help_text="End: a date (inclusive, whole day) or a date and time (exclusive)."
    )
    reversed = QueryBooleanField(required=False, help_text="true: only reversed ones; false: only standing ones.")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class ReverseInput(serializers.Serializer):
    reason = StrictCharField(max_length=1000, required=False, allow_blank=True)


# --- Jobs -----------------------------------------------------------------------------------------------------


@extend_schema_field(ErrorBody)
class JobErrorField(serializers.JSONField):
    """The stored error of a failed job, passed on whole (its details keep every key)."""


class JobResultOutput(serializers.Serializer):
    """What a finished job reports; which keys are present depends on its kind and status."""

    created = serializers.IntegerField(required=False, help_text="generate, upload: codes created.")
    warnings = TextList(required=False, help_text="generate: warnings.")
    skipped = TextList(required=False, help_text="upload: duplicates skipped (the first 100).")
    skipped_count = serializers.IntegerField(required=False, help_text="upload: duplicates skipped.")
    rows = serializers.IntegerField(required=False, help_text="export: rows written.")
    filename = serializers.CharField(required=False, help_text="export: the workbook's file name; distribute: the CSV's.")
    total = serializers.IntegerField(required=False, help_text="distribute: rows of the result (one per distinct id).")
    assigned = serializers.IntegerField(required=False, help_text="distribute: users given a code now.")
    already_assigned = serializers.IntegerField(required=False, help_text="distribute: users who kept the code they held.")
    invalid = serializers.IntegerField(required=False, help_text="distribute: rows that are no valid user id.")
    duplicates = serializers.IntegerField(required=False, help_text="distribute: repeated ids collapsed into one row.")
    error = JobErrorField(required=False, help_text="failed: the error, in the API's error shape.")


class JobOutput(serializers.ModelSerializer):
    done = serializers.SerializerMethodField()
    result = JobResultOutput(read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "book",
            "total",
            "done",
            "result",
            "error",
            "download_url",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_done(self, job) -> int:
        return getattr(job, "progress_done", job.done)

    @extend_schema_field({"type": "string", "nullable": True})
    def get_download_url(self, job) -> str | None:
        if not job.download_ready:
            return None
        request = self.context.get("request")
        path = f"/api/v1/jobs/{job.pk}/file/"
        return request.build_absolute_uri(path) if request is not None else path
