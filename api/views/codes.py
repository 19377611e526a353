"""The code lifecycle: look-up, assign, lock, unlock, redeem, validate; and a user's codes."""

from rest_framework.response import Response

from books.inputs import clean_user_id
from books.models import Code
from books.rules import BOOK_ASSIGNABLE_RULES, CODE_ASSIGNABLE_RULES, ORDER_RULES, USE_RULES
from books.selectors import code_get, code_validate, codes_of_user
from books.services.codes import code_assign, code_redeem, code_release, code_reserve
from core.exceptions import ApplicationError

from ..pagination import PagePagination
from ..permissions import IsApiClientOrEndUser, user_id_for, with_end_user_id
from ..schema import errors, operation
from ..serializers import (
    AssignInput,
    CodeOutput,
    LockInput,
    RedeemInput,
    RedemptionOutput,
    ReservationOutput,
    UnlockInput,
    UnlockOutput,
    UserCodesQuery,
    ValidateQuery,
    ValidationOutput,
)
from ..throttling import failed_lookup_settle
from .base import ApiView


class _CodeView(ApiView):
    # A look-up of an unknown code counts towards the failed look-up throttle (stops guessing).
    counts_failed_lookups = True

    def parse_for_user(self, serializer_class, data) -> tuple[dict, str]:
        """The input, with an end user's own id filled in, and the id of the user the call acts for."""
        parsed = self.parse(serializer_class, with_end_user_id(self.request, data))
        return parsed, user_id_for(self.request, parsed.get("user_id"))

    def finalize_response(self, request, response, *args, **kwargs):
        # The look-up's reserved throttle slots go back unless it answered code_not_found.
        failed_lookup_settle(request)
        return super().finalize_response(request, response, *args, **kwargs)


class CodeDetailView(_CodeView):
    error_codes = errors("code_not_found")

    @operation("code_get", "codes", responses={200: CodeOutput})
    def get(self, request, code):
        """A code with its state"""
        return Response(CodeOutput.render(code_get(tenant=self.tenant, code=code)))


class CodeAssignView(_CodeView):
    error_codes = errors("code_not_found", *CODE_ASSIGNABLE_RULES, "user_code_limit_reached", *BOOK_ASSIGNABLE_RULES)

    @operation("code_assign", "assignment", request=AssignInput, responses={200: CodeOutput}, once=True, one_transaction=True)
    def post(self, request, code):
        """Assign this code to a user

        200 whether it was assigned now or was already this user's.
        """
        data = self.parse(AssignInput, request.data)
        found, _ = code_assign(tenant=self.tenant, code=code, user_id=data["user_id"], actor=self.actor)
        return Response(CodeOutput.render(found))


class CodeLockView(_CodeView):
    permission_classes = [IsApiClientOrEndUser]
    error_codes = errors("code_not_found", *USE_RULES)

    @operation("code_lock", "checkout", request=LockInput, responses={201: ReservationOutput}, once=True, one_transaction=True)
    def post(self, request, code):
        """Lock (reserve) one use of the code for a user"""
        data, user_id = self.parse_for_user(LockInput, request.data)
        reservation = code_reserve(
            tenant=self.tenant, code=code, user_id=user_id, actor=self.actor, ttl_seconds=data.get("ttl_seconds")
        )
        return Response(ReservationOutput.render(reservation), status=201)


class CodeUnlockView(_CodeView):
    permission_classes = [IsApiClientOrEndUser]
    error_codes = errors("code_not_found", "reservation_not_found", "reservation_not_active", "code_not_assigned_to_user")

    @operation("code_unlock", "checkout", request=UnlockInput, responses={200: UnlockOutput}, once=True, one_transaction=True)
    def post(self, request, code):
        """Release the user's lock on the code

        With `token`, that reservation; without, every active one of the user on this code. Releasing an expired or
        released reservation is not an error.
        """
        data, user_id = self.parse_for_user(UnlockInput, request.data)
        if request.user.is_end_user:
            # Lock and redeem refuse another user's code in the service; unlock would merely find no hold of
            # this user, so an end user's reach for someone else's code is refused here, the same way.
            found = code_get(tenant=self.tenant, code=code)
            if found.book.requires_assignment and found.user_id != user_id:
                raise ApplicationError(
                    "code_not_assigned_to_user", "This code is not assigned to this user.", {"code": found.code}
                )
        released = code_release(tenant=self.tenant, code=code, user_id=user_id, actor=self.actor, token=data.get("token"))
        return Response({"released": released})


class CodeRedeemView(_CodeView):
    permission_classes = [IsApiClientOrEndUser]
    error_codes = errors(
        "code_not_found",
        "reservation_not_found",
        "reservation_not_active",
        "reservation_expired",
        *USE_RULES,
        *ORDER_RULES,
    )

    @operation("code_redeem", "checkout", request=RedeemInput, responses={201: RedemptionOutput}, once=True, one_transaction=True)
    def post(self, request, code):
        """Redeem the code

        With the lock's `token`, consumes that reservation; without one, locks and redeems at once under the same rules.
        Send an Idempotency-Key so a retried request never redeems twice. An `amount` goes with its `currency`
        (ISO 4217); a book with a currency of its own refuses another (409 currency_mismatch).
        """
        data, user_id = self.parse_for_user(RedeemInput, request.data)
        redemption = code_redeem(
            tenant=self.tenant,
            code=code,
            user_id=user_id,
            actor=self.actor,
            token=data.get("token"),
            order_ref=data.get("order_ref", ""),
            amount=data.get("amount"),
            currency=data.get("currency", ""),
            product_id=data.get("product_id", ""),
            idempotency_key=self.idempotency_key,
        )
        return Response(RedemptionOutput.render(redemption), status=201)


class CodeValidateView(_CodeView):
    permission_classes = [IsApiClientOrEndUser]
    error_codes = errors("code_not_found", "code_not_assigned_to_user")

    @operation("code_validate", "checkout", parameters=[ValidateQuery], responses={200: ValidationOutput})
    def get(self, request, code):
        """Would a redeem succeed now? (changes nothing)"""
        data, user_id = self.parse_for_user(ValidateQuery, request.query_params)
        result = code_validate(
            tenant=self.tenant,
            code=code,
            user_id=user_id,
            amount=data.get("amount"),
            currency=data.get("currency", ""),
            product_id=data.get("product_id", ""),
        )
        if request.user.is_end_user and result.reason == "code_not_assigned_to_user":
            # An end user asking about someone else's code is refused, as lock and redeem would refuse it.
            raise ApplicationError("code_not_assigned_to_user", result.message, {"code": str(code)[:64]})
        return Response(ValidationOutput.render(result))


class UserCodesView(ApiView):
    permission_classes = [IsApiClientOrEndUser]
    pagination_class = PagePagination
    serializer_class = CodeOutput
    queryset = Code.objects.none()  # for the schema; requests use the selector
    error_codes = errors("book_not_found")

    @operation("user_codes_list", "assignment", parameters=[UserCodesQuery], responses={200: CodeOutput(many=True)})
    def get(self, request, user_id):
        """The codes assigned to a user"""
        if request.user.is_end_user and user_id != request.user.user_id:
            raise ApplicationError("permission_denied", "An end-user token may list only its own codes.")
        data = self.parse(UserCodesQuery, request.query_params)
        codes = codes_of_user(tenant=self.tenant, user_id=clean_user_id(user_id), book_id=data.get("book"))
        page = self.paginate_queryset(codes)
        return self.get_paginated_response(CodeOutput(page, many=True).data)
