"""The base of every API view: body size limits, input parsing, and the caller's tenant and actor."""

from django.conf import settings
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.generics import GenericAPIView

from core.exceptions import ApplicationError

from ..authentication import credentials_confirm
from ..serializers import Prebuilt

WRITE_METHODS = ("POST", "PUT", "PATCH")


class ApiView(GenericAPIView):
    #: The request's Idempotency-Key, set for handlers declared with @api.idempotency.idempotent.
    idempotency_key = ""
    #: Error codes beyond the common ones (documented in the schema): a tuple, or a dict by method.
    error_codes: tuple[str, ...] | dict[str, tuple[str, ...]] = ()
    #: The caller's credential row may come from this process's memory before its shared version is read: the
    #: throttle reads it in its own round trip (api.throttling), and `initial`, `permission_denied` and
    #: `handle_exception` confirm it otherwise, so no handler and no error answer acts on an unconfirmed row.
    defers_credential_check = True

    def initial(self, request, *args, **kwargs):
        if request.method in WRITE_METHODS:
            if request.content_type.startswith("multipart/"):
                length = request.META.get("CONTENT_LENGTH") or "0"
                limit = settings.COUPONS["API_UPLOAD_MAX_BYTES"]
                if not length.isdigit() or int(length) > limit:
                    raise ApplicationError(
                        "request_too_large",
                        f"An upload is at most {limit:,} bytes.",
                        {"limit": limit},
                    )
            else:
                # Read the body now: Django refuses one above DATA_UPLOAD_MAX_MEMORY_SIZE (413 here), and the
                # Idempotency-Key fingerprint needs the raw bytes after DRF has parsed them.
                request._request.body  # noqa: B018
        super().initial(request, *args, **kwargs)
        credentials_confirm(request)  # when no throttle read the version

    def permission_denied(self, request, message=None, code=None):
        credentials_confirm(request)  # a revoked caller is told so (401), not 403
        super().permission_denied(request, message, code)

    def handle_exception(self, exc):
        try:
            credentials_confirm(self.request)  # an error before the throttle: a revoked caller still gets 401
        except AuthenticationFailed as failed:
            exc = failed
        return super().handle_exception(exc)

    @property
    def tenant(self):
        return self.request.user.tenant

    @property
    def actor(self):
        return self.request.user.actor

    def parse(self, serializer_class, data):
        if issubclass(serializer_class, Prebuilt):
            try:
                return serializer_class.prototype().run_validation(data)
            except ValidationError:
                pass  # the error answer is built below, the same way as for every other input
        serializer = serializer_class(
            data=data, context={"request": self.request, "tenant": getattr(self.request.user, "tenant", None)}
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
