"""A password rule Django's own validators leave out: eight spaces pass MinimumLengthValidator."""

from django.core.exceptions import ValidationError


class NotOnlyWhitespaceValidator:
    def validate(self, password: str, user=None) -> None:
        if not password.strip():
            raise ValidationError("This password is only white space.", code="password_only_whitespace")

    def get_help_text(self) -> str:
        return "Your password can't be only white space."
