"""Normalisation of the values callers send: code strings, user ids, amounts and an order's currency, TTLs, a book's
currency and products.

The edges run what they receive through these (the API's `*Input` serializers, the admin's forms, the commands),
so bad input of any kind becomes an ApplicationError with a stable code and its field before a service is called;
the services take the typed values and trust them.
"""

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings

from core.exceptions import ApplicationError

from .models import CODE_REGEX

CODE_RE = re.compile(CODE_REGEX)
CURRENCY_RE = re.compile(r"[A-Z]{3}")  # an ISO 4217 code as integrators send it: EUR, USD
MAX_USER_ID_LENGTH = 255
MAX_AMOUNT = Decimal("999999999999.99")
# Every date or time a client or staff member sends must be one every time zone can show: a day's bounds and a
# moment's local time must exist for Python (years 1 to 9999) in any tenant's zone, or PostgreSQL would store a
# value that Django cannot read back (and every page listing that row would fail). A year of margin on each side.
MIN_YEAR, MAX_YEAR = 2, 9998
EARLIEST = datetime(MIN_YEAR, 1, 1, tzinfo=UTC)
LATEST = datetime(MAX_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def normalize_code(value: str) -> str:
    """Strip surrounding white space and upper-case; codes are matched case-insensitively, stored upper-case."""
    if not isinstance(value, str):  # the code lifecycle's services (services/codes.py) still take untyped codes
        raise ApplicationError("invalid_input", "A code must be a string.", {"code": repr(value)[:80]})
    return value.strip().upper()


def is_valid_code(value: str) -> bool:
    return bool(CODE_RE.fullmatch(value))


def clean_user_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApplicationError("invalid_input", "user_id must be a non-empty string.", {"field": "user_id"})
    value = value.strip()
    if len(value) > MAX_USER_ID_LENGTH or "\x00" in value:
        raise ApplicationError(
            "invalid_input", f"user_id must be at most {MAX_USER_ID_LENGTH} printable characters.", {"field": "user_id"}
        )
    return value


def clean_amount(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ApplicationError("invalid_input", "amount must be a decimal number.", {"field": "amount"}) from None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise ApplicationError("invalid_input", "amount must be a number from 0 up.", {"field": "amount"})
    return amount.quantize(Decimal("0.01"))


def clean_order_currency(value: object, *, amount: Decimal | None) -> str:
    """The currency of an order (redeem, validate): three upper-case letters (ISO 4217), required with an amount
    (money has a currency). Stricter than a book's (clean_currency): integrators send codes, people type books."""
    if value is None or value == "":
        if amount is not None:
            raise ApplicationError(
                "invalid_input", "currency is required with an amount (ISO 4217, e.g. EUR).", {"field": "currency"}
            )
        return ""
    if not isinstance(value, str) or not CURRENCY_RE.fullmatch(value):
        raise ApplicationError(
            "invalid_input", "currency must be an ISO 4217 code: three upper-case letters, e.g. EUR.", {"field": "currency"}
        )
    return value


def clean_text(value: object, *, field: str, max_length: int = 255) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    if len(value) > max_length or "\x00" in value:
        raise ApplicationError("invalid_input", f"{field} must be at most {max_length} characters.", {"field": field})
    return value


def clean_currency(value: str) -> str:
    """An ISO 4217 code, upper-cased, or "" (a percent book needs none)."""
    value = value.strip().upper()
    if value and not (len(value) == 3 and value.isascii() and value.isalpha()):
        raise ApplicationError("invalid_input", "currency must be a three-letter ISO 4217 code.", {"field": "currency"})
    return value


MAX_PRODUCT_IDS = 10_000


def clean_product_ids(value: object) -> list[str]:
    """A book's eligible products from JSON a person typed (the admin): a list of ids, numbers read as strings."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in value):
        raise ApplicationError("invalid_input", "product_ids must be a list of product ids (strings).", {"field": "product_ids"})
    ids = [str(p).strip() for p in value]
    if len(ids) > MAX_PRODUCT_IDS or any(not p or len(p) > 255 or "\x00" in p for p in ids):
        raise ApplicationError(
            "invalid_input",
            f"product_ids holds at most {MAX_PRODUCT_IDS:,} non-empty ids of up to 255 characters.",
            {"field": "product_ids"},
        )
    return ids


def clean_ttl(value: object, *, default: int) -> int:
    if value is None or value == "":
        return default
    bounds = settings.COUPONS["LOCK_TTL_MIN"], settings.COUPONS["LOCK_TTL_MAX"]
    try:
        ttl = int(value)
    except (TypeError, ValueError):
        ttl = -1
    # A bool is an int to Python and 30.5 would silently become 30: both are refused, not coerced.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()) or not bounds[0] <= ttl <= bounds[1]:
        raise ApplicationError(
            "invalid_input", f"ttl_seconds must be a whole number from {bounds[0]} to {bounds[1]}.", {"field": "ttl_seconds"}
        )
    return ttl


def _out_of_range(field: str) -> ApplicationError:
    return ApplicationError(
        "invalid_input", f"{field} must be a date between the years {MIN_YEAR} and {MAX_YEAR}.", {"field": field}
    )


def clean_moment(value: datetime, *, field: str) -> datetime:
    """An aware date and time within the years every time zone can show; anything else is invalid_input."""
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _out_of_range(field) from None
    if not EARLIEST <= moment <= LATEST:
        raise _out_of_range(field)
    return value


def clean_day(value: date, *, field: str) -> date:
    """A calendar day within the same years (its midnight in any time zone exists)."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise _out_of_range(field)
    return value
