"""The input rules of tenants, staff users and API clients, applied at the edges (the operator commands, the admin
forms): the services take the cleaned values and trust them."""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils.text import slugify

from core.exceptions import ApplicationError

from .models import validate_timezone


def clean_slug(value: str) -> str:
    if not value or slugify(value) != value:
        raise ApplicationError(
            "invalid_input", "The slug may hold only lower-case letters, digits, '-' and '_'.", {"slug": value}
        )
    return value


def clean_timezone(value: str) -> str:
    try:
        validate_timezone(value)
    except ValidationError as exc:
        raise ApplicationError("invalid_input", exc.messages[0], {"timezone": value}) from exc
    return value


def clean_name(value: str, *, of: str) -> str:
    """A display name, stripped; `of` says whose ("tenant", "API client") in the message."""
    value = value.strip()
    if not value:
        raise ApplicationError("invalid_input", f"The {of} needs a name.")
    return value


def clean_password(password: str, *, username: str, email: str = "") -> str:
    """Django's password validators, which compare the password with the user's name and e-mail too."""
    try:
        validate_password(password, get_user_model()(username=username, email=email))
    except ValidationError as exc:
        raise ApplicationError("invalid_input", " ".join(exc.messages), {"password": exc.messages}) from exc
    return password
