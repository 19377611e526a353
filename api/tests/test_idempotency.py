"""Idempotency-Key: a retry replays the first answer, another body with the same key is refused."""

from unittest import mock

import pytest
from django.utils import timezone

import api.views.codes as code_views
from api.models import IdempotencyKey
from books.models import Code, CouponBook
from redemptions.models import Redemption
from tests.helpers import deadlock

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def redeem(client, code, key, **body):
    return client.post(f"/api/v1/codes/{code}/redeem/", {"user_id": "bob", **body}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_replayed_redeem_returns_the_same_redemption_and_one_row_exists(api, make_code):
    code = make_code(user_id="bob")
    first = redeem(api, code.code, "order-77-redeem", order_ref="order-77")
    assert first.status_code == 201
    again = redeem(api, code.code, "order-77-redeem", order_ref="order-77")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Redemption.objects.count() == 1
    assert Redemption.objects.get().idempotency_key == "order-77-redeem"
    assert Code.objects.get(pk=code.pk).redeemed_count == 1


def test_the_same_key_with_another_body_is_refused(api, make_code):
    code = make_code(user_id="bob")
    assert redeem(api, code.code, "k-1", order_ref="order-1").status_code == 201
    error = assert_error(redeem(api, code.code, "k-1", order_ref="order-2"), 422, "idempotency_key_mismatch")
    assert error["details"]["header"] == "Idempotency-Key"
    other_code = make_code(user_id="bob")
    assert_error(redeem(api, other_code.code, "k-1", order_ref="order-1"), 422, "idempotency_key_mismatch")
    assert Redemption.objects.count() == 1


def test_an_error_is_not_stored_so_a_retry_runs_again(api, active_book, make_code):
    code = make_code(user_id="bob")
    active_book.status = "paused"
    active_book.save()
    assert_error(redeem(api, code.code, "k-err"), 409, "book_not_active")
    assert not IdempotencyKey.objects.exists()
    active_book.status = "active"
    active_book.save()
    assert redeem(api, code.code, "k-err").status_code == 201


def test_keys_belong_to_one_caller(api, other_api, end_user, make_code):
    code = make_code(user_id="alice")
    created = api.post("/api/v1/books/", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="shared-key")
    assert created.status_code == 201
    # Another client (another tenant) using the same key string gets its own answer.
    theirs = other_api.post("/api/v1/books/", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="shared-key")
    assert theirs.status_code == 201 and theirs.json()["id"] != created.json()["id"]
    lock = end_user.post(f"/api/v1/codes/{code.code}/lock/", {}, format="json", HTTP_IDEMPOTENCY_KEY="shared-key")
    assert lock.status_code == 201
    assert CouponBook.objects.filter(name="Once").count() == 2


def test_a_replayed_create_does_not_create_twice(api):
    for _ in range(3):
        response = api.post("/api/v1/books/", {"name": "Only once"}, format="json", HTTP_IDEMPOTENCY_KEY="create-1")
        assert response.status_code == 201
    assert CouponBook.objects.filter(name="Only once").count() == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_answers_400(api, key):
    response = api.post("/api/v1/books/", {"name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert_error(response, 400, "invalid_input")
    assert not CouponBook.objects.exists()


def test_old_keys_are_purged_and_then_a_retry_runs_as_new(api):
    from datetime import timedelta

    from api.tasks import purge_idempotency_keys

    api.post("/api/v1/books/", {"name": "Old"}, format="json", HTTP_IDEMPOTENCY_KEY="old-key")
    api.post("/api/v1/books/", {"name": "New"}, format="json", HTTP_IDEMPOTENCY_KEY="new-key")
    IdempotencyKey.objects.filter(key="old-key").update(created_at=timezone.now() - timedelta(days=2))
    assert purge_idempotency_keys() == 1
    assert purge_idempotency_keys() == 0
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new-key"]
    assert api.post("/api/v1/books/", {"name": "Old"}, format="json", HTTP_IDEMPOTENCY_KEY="old-key").status_code == 201
    assert CouponBook.objects.filter(name="Old").count() == 2


@pytest.mark.django_db(transaction=True)
def test_plain_idempotent_keeps_the_savepoint_a_service_may_roll_back_to(tenant):
    """A handler that catches an error of its own atomic block (an upload meeting a concurrent one) needs that
    block's savepoint: plain @idempotent keeps it; one_transaction=True is only for services that never do."""
    from django.db import IntegrityError, transaction
    from django.db.transaction import TransactionManagementError
    from django.test import RequestFactory
    from rest_framework.response import Response

    from api.idempotency import _run_once
    from api.principals import Principal
    from tenants.models import Tenant

    def request(key: str):
        made = RequestFactory().post("/api/v1/x/", data=b"{}", content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)
        made.user = Principal(tenant=tenant, user_id="u", key_id="k")
        return made

    def handler(key: str) -> Response:
        try:
            with transaction.atomic():
                Tenant.objects.create(slug=tenant.slug, name="clash")  # the unique slug: IntegrityError
        except IntegrityError:
            pass  # tries another way, in the same transaction
        return Response({"done": True}, status=201)

    assert _run_once(request("with-savepoint"), handler, one_transaction=False).status_code == 201
    with pytest.raises(TransactionManagementError):
        _run_once(request("without"), handler, one_transaction=True)


@pytest.mark.django_db(transaction=True)
def test_a_keyed_call_failed_as_a_deadlocks_victim_runs_again_whole(api, make_code):
    """The key's transaction is the outermost (core.transactions): rolled back with its claim, then run again."""
    code = make_code(user_id="bob")
    real_redeem, calls = code_views.code_redeem, []

    def redeem_deadlocking_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            assert IdempotencyKey.objects.filter(key="k-deadlock").exists()  # claimed in this transaction
            raise deadlock()
        return real_redeem(**kwargs)

    with mock.patch.object(code_views, "code_redeem", side_effect=redeem_deadlocking_once):
        response = redeem(api, code.code, "k-deadlock", order_ref="order-9")
    assert response.status_code == 201
    assert len(calls) == 2
    assert IdempotencyKey.objects.filter(key="k-deadlock").count() == 1
    assert Redemption.objects.count() == 1
    assert redeem(api, code.code, "k-deadlock", order_ref="order-9").json() == response.json()
