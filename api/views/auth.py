"""Tokens for API clients, and the end-user signing keys a tenant registers."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from ..idempotency import idempotent
from ..models import EndUserSigningKey
from ..pagination import PagePagination
from ..serializers import (
    AccessTokenOutput,
    SigningKeyInput,
    SigningKeyOutput,
    TokenObtainInput,
    TokenPairOutput,
    TokenRefreshInput,
)
from ..services import api_token_refresh, api_tokens_issue, end_user_key_register, end_user_key_revoke
from .base import ApiView


class _TokenView(ApiView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_scope = "auth"
    error_codes = ("authentication_failed",)


class TokenObtainView(_TokenView):
    @extend_schema(
        operation_id="token_obtain",
        tags=["auth"],
        summary="Exchange client credentials for tokens",
        request=TokenObtainInput,
        responses={200: TokenPairOutput},
        auth=[],
    )
    def post(self, request):
        data = self.parse(TokenObtainInput, request.data)
        return Response(api_tokens_issue(client_id=data["client_id"], client_secret=data["client_secret"]))


class TokenRefreshView(_TokenView):
    @extend_schema(
        operation_id="token_refresh",
        tags=["auth"],
        summary="A new access token from a refresh token",
        request=TokenRefreshInput,
        responses={200: AccessTokenOutput},
        auth=[],
    )
    def post(self, request):
        data = self.parse(TokenRefreshInput, request.data)
        return Response(api_token_refresh(refresh=data["refresh"]))


class SigningKeyListView(ApiView):
    """The keys of the tenant's login service whose tokens let end users act on their own codes."""

    pagination_class = PagePagination
    serializer_class = SigningKeyOutput

    queryset = EndUserSigningKey.objects.none()  # for the schema

    def get_queryset(self):
        return EndUserSigningKey.objects.filter(tenant=self.tenant).order_by("-created_at", "-pk")

    @extend_schema(
        operation_id="end_user_keys_list",
        tags=["end-user keys"],
        summary="List the end-user signing keys",
        responses={200: SigningKeyOutput(many=True)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SigningKeyOutput(page, many=True).data)

    @extend_schema(
        operation_id="end_user_key_register",
        tags=["end-user keys"],
        summary="Register an end-user signing key",
        description="Tokens signed with it must name the returned `kid` in their header and carry `sub` (the end "
        "user's id) and `exp`.",
        request=SigningKeyInput,
        responses={201: SigningKeyOutput},
    )
    @idempotent
    def post(self, request):
        data = self.parse(SigningKeyInput, request.data)
        created = end_user_key_register(tenant=self.tenant, name=data["name"], algorithm=data["algorithm"], key=data["key"])
        return Response(SigningKeyOutput(created).data, status=201)


class SigningKeyDetailView(ApiView):
    error_codes = ("signing_key_not_found",)

    @extend_schema(
        operation_id="end_user_key_revoke",
        tags=["end-user keys"],
        summary="Revoke an end-user signing key",
        description="The key stays on record, inactive: the answer is the key with `is_active` false and "
        "`revoked_at` set. Tokens signed with it are refused from now on.",
        responses={200: SigningKeyOutput},
    )
    def delete(self, request, kid):
        return Response(SigningKeyOutput(end_user_key_revoke(tenant=self.tenant, kid=kid)).data)
