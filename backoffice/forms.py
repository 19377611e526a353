"""Form helpers of the admin toolkit: the edges' input rules (books.inputs, webhooks.inputs) as form errors."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ValidationError

from core.exceptions import ApplicationError

T = TypeVar("T")


def input_clean(clean: Callable[..., T], value: Any, **kwargs: Any) -> T:
    """Run one input rule on a form value; its refusal becomes the field's error, with the same message the API gives."""
    try:
        return clean(value, **kwargs)
    except ApplicationError as exc:
        raise ValidationError(exc.message) from None
