"""Who may call what: API clients may call every endpoint; an end user only the lifecycle calls on their codes."""

from collections.abc import Mapping

from rest_framework.permissions import BasePermission

from core.exceptions import ApplicationError

from .principals import Principal


class IsApiClient(BasePermission):
    """The default: an authenticated API client. An end-user token is refused (403)."""

    message = "This endpoint needs an API client's token."

    def has_permission(self, request, view) -> bool:
        principal = request.user
        return isinstance(principal, Principal) and principal.client is not None


class IsApiClientOrEndUser(BasePermission):
    """Validate, lock, unlock, redeem and a user's own code list: also open to an end user (for their own id)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, Principal)


def user_id_for(request, value: object) -> object:
    """The user a call acts for: an end user always acts for themselves (their token's `sub`).

    An end user naming another user is refused; a client's value is passed on as sent (the service checks it).
    """
    principal: Principal = request.user
    if not principal.is_end_user:
        return value
    if value not in (None, "") and (not isinstance(value, str) or value.strip() != principal.user_id):
        raise ApplicationError("permission_denied", "An end-user token may act only for its own user id.", {"field": "user_id"})
    return principal.user_id


def with_end_user_id(request, data: object) -> object:
    """The input of a lifecycle call, with an end user's own id filled in when they left `user_id` out.

    The schema requires `user_id` (an API client must send it); an end user's token already names its user.
    """
    principal: Principal = request.user
    if principal.is_end_user and isinstance(data, Mapping) and "user_id" not in data:
        return {**{key: data.get(key) for key in data}, "user_id": principal.user_id}
    return data
