"""The input rules of a webhook endpoint, applied at the edges (the API's EndpointInput, the admin's EndpointForm):
a URL the sender may call, and event types of the catalogue. The services take the cleaned values and trust them;
the sender checks the URL again before every send (an address may change)."""

from django.conf import settings

from core.exceptions import ApplicationError

from . import sender
from .models import EVENT_TYPES

URL_MAX = 2000
DESCRIPTION_MAX = 500


def _bad(field: str, message: str) -> ApplicationError:
    return ApplicationError("invalid_input", message, {"field": field})


def clean_url(value: str) -> str:
    value = value.strip()
    if not value:
        raise _bad("url", "url must be an https URL.")
    if len(value) > URL_MAX or not value.isprintable() or not value.isascii():
        raise _bad("url", f"url must be a printable ASCII URL of at most {URL_MAX} characters.")
    try:
        sender.url_check(value, allow_insecure=settings.COUPONS["WEBHOOKS_ALLOW_INSECURE"])
    except sender.UnsafeUrl as exc:
        raise _bad("url", str(exc)) from None
    return value


def clean_events(value: list[str]) -> list[str]:
    if not value:
        raise _bad("events", f"events must be a non-empty list of event types: {', '.join(EVENT_TYPES)}.")
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ApplicationError(
            "invalid_input",
            f"Unknown event type(s): {', '.join(unknown)[:200]}; choose from {', '.join(EVENT_TYPES)}.",
            {"field": "events", "unknown": unknown[:20]},
        )
    return [name for name in EVENT_TYPES if name in value]  # catalogue order, no repeats
