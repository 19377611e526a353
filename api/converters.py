"""Path converters of the API: a path parameter is checked for its shape before any view sees it.

A value that does not fit answers the API's JSON 404 (the catch-all route); a NUL byte anywhere in a URL is a 400
before routing (core.middleware.NulByteMiddleware).
"""

from django.urls import register_converter


class TextConverter:
    """A path parameter passed on as the text it is, once its `regex` matched."""

    regex: str

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class UserIdConverter(TextConverter):
    """An end-user id: any printable characters, `/` included (sent percent-encoded: /users/shop%2F42/codes/)."""

    regex = r"[^\x00-\x1f\x7f]{1,255}"


class KeyIdConverter(TextConverter):
    """The kid of an end-user signing key (api.services: "euk_" and hex)."""

    regex = r"[A-Za-z0-9_-]{1,64}"


register_converter(UserIdConverter, "user_id")
register_converter(KeyIdConverter, "kid")
