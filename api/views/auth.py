"""Tokens for API clients, and the end-user signing keys a tenant registers."""

from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from ..models import EndUserSigningKey
from ..pagination import PagePagination
from ..schema import operation
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
    @operation("token_obtain", "auth", request=TokenObtainInput, responses={200: TokenPairOutput}, auth=[])
    def post(self, request):
        """Exchange client credentials for tokens"""
        data = self.parse(TokenObtainInput, request.data)
        return Response(api_tokens_issue(client_id=data["client_id"], client_secret=data["client_secret"]))


class TokenRefreshView(_TokenView):
    @operation("token_refresh", "auth", request=TokenRefreshInput, responses={200: AccessTokenOutput}, auth=[])
    def post(self, request):
        """A new access token from a refresh token"""
        data = self.parse(TokenRefreshInput, request.data)
        return Response(api_token_refresh(refresh=data["refresh"]))


class SigningKeyListView(ApiView):
    """The keys of the tenant's login service whose tokens let end users act on their own codes."""

    pagination_class = PagePagination
    serializer_class = SigningKeyOutput

    queryset = EndUserSigningKey.objects.none()  # for the schema

    def get_queryset(self):
        return EndUserSigningKey.objects.filter(tenant=self.tenant).order_by("-created_at", "-pk")

    @operation("end_user_keys_list", "end-user keys", responses={200: SigningKeyOutput(many=True)})
    def get(self, request):
        """List the end-user signing keys"""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SigningKeyOutput(page, many=True).data)

    @operation("end_user_key_register", "end-user keys", request=SigningKeyInput, responses={201: SigningKeyOutput}, once=True)
    def post(self, request):
        """Register an end-user signing key

        Tokens signed with it must name the returned `kid` in their header and carry `sub` (the end user's id) and `exp`.
        """
        data = self.parse(SigningKeyInput, request.data)
        created = end_user_key_register(tenant=self.tenant, name=data["name"], algorithm=data["algorithm"], key=data["key"])
        return Response(SigningKeyOutput(created).data, status=201)


class SigningKeyDetailView(ApiView):
    error_codes = ("signing_key_not_found",)

    @operation("end_user_key_revoke", "end-user keys", responses={200: SigningKeyOutput})
    def delete(self, request, kid):
        """Revoke an end-user signing key

        The key stays on record, inactive: the answer is the key with `is_active` false and `revoked_at` set. Tokens signed
        with it are refused from now on.
        """
        return Response(SigningKeyOutput(end_user_key_revoke(tenant=self.tenant, kid=kid)).data)
