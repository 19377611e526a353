"""URLs of the integrator REST API, mounted under /api/v1/. Anything else under /api/ answers a JSON 404."""

from django.urls import path, re_path

from webhooks import views as webhooks

from . import converters  # noqa: F401 - registers the user_id and kid converters
from .views import auth, books, codes, jobs, redemptions
from .views.errors import not_found_json

urlpatterns = [
    path("auth/token/", auth.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/refresh/", auth.TokenRefreshView.as_view(), name="api-token-refresh"),
    path("end-user-keys/", auth.SigningKeyListView.as_view(), name="api-signing-keys"),
    path("end-user-keys/<kid:kid>/", auth.SigningKeyDetailView.as_view(), name="api-signing-key"),
    path("books/", books.BookListView.as_view(), name="api-books"),
    path("books/<int:book_id>/", books.BookDetailView.as_view(), name="api-book"),
    path("books/<int:book_id>/stats/", books.BookStatsView.as_view(), name="api-book-stats"),
    path("books/<int:book_id>/codes/", books.BookCodesView.as_view(), name="api-book-codes"),
    path("books/<int:book_id>/codes/generate/", books.CodesGenerateView.as_view(), name="api-book-generate"),
    path("books/<int:book_id>/codes/upload/", books.CodesUploadView.as_view(), name="api-book-upload"),
    path("books/<int:book_id>/assign/", books.BookAssignView.as_view(), name="api-book-assign"),
    path("books/<int:book_id>/distribute/", books.BookDistributeView.as_view(), name="api-book-distribute"),
    path("codes/<str:code>/", codes.CodeDetailView.as_view(), name="api-code"),
    path("codes/<str:code>/assign/", codes.CodeAssignView.as_view(), name="api-code-assign"),
    path("codes/<str:code>/lock/", codes.CodeLockView.as_view(), name="api-code-lock"),
    path("codes/<str:code>/unlock/", codes.CodeUnlockView.as_view(), name="api-code-unlock"),
    path("codes/<str:code>/redeem/", codes.CodeRedeemView.as_view(), name="api-code-redeem"),
    path("codes/<str:code>/validate/", codes.CodeValidateView.as_view(), name="api-code-validate"),
    path("users/<user_id:user_id>/codes/", codes.UserCodesView.as_view(), name="api-user-codes"),
    path("redemptions/", redemptions.RedemptionListView.as_view(), name="api-redemptions"),
    path("redemptions/export/", redemptions.RedemptionExportView.as_view(), name="api-redemptions-export"),
    path("redemptions/<int:redemption_id>/reverse/", redemptions.RedemptionReverseView.as_view(), name="api-redemption-reverse"),
    path("jobs/<int:job_id>/", jobs.JobDetailView.as_view(), name="api-job"),
    path("jobs/<int:job_id>/file/", jobs.JobFileView.as_view(), name="api-job-file"),
    path("webhooks/", webhooks.EndpointListView.as_view(), name="api-webhooks"),
    path("webhooks/<int:webhook_id>/", webhooks.EndpointDetailView.as_view(), name="api-webhook"),
    path("webhooks/<int:webhook_id>/deliveries/", webhooks.DeliveryListView.as_view(), name="api-webhook-deliveries"),
    path(
        "webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/retry/",
        webhooks.DeliveryRetryView.as_view(),
        name="api-webhook-delivery-retry",
    ),
    path("webhooks/<int:webhook_id>/test/", webhooks.EndpointPingView.as_view(), name="api-webhook-ping"),
    path("webhooks/<int:webhook_id>/rotate-secret/", webhooks.EndpointSecretRotateView.as_view(), name="api-webhook-rotate"),
    re_path(r"^.*$", not_found_json),
]
