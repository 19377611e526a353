"""Fixtures of the API tests: API clients with real tokens, end-user keys and tokens, HTTP helpers."""

import secrets
import time

import jwt
import pytest
from rest_framework.test import APIClient

from api.services import api_tokens_issue, end_user_key_register
from tenants.services import api_client_create
from tests.factories import CodeFactory, CouponBookFactory

HS_SECRET = "s3cret-of-the-login-service-" + "x" * 16


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # API-client secrets are hashed like passwords; PBKDF2's deliberate slowness only slows the tests down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def eager_celery():
    """Celery tasks run in the calling process (queued on commit, as in production)."""
    from coupons_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def http():
    """An HTTP client with no credentials."""
    return APIClient()


@pytest.fixture
def issued(tenant):
    return api_client_create(tenant=tenant, name="Shop checkout")


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


@pytest.fixture
def api(issued):
    """An APIClient authenticated as an API client of `tenant`, with a token from the token service."""
    tokens = api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)
    client = bearer(tokens["access"])
    client.tenant = issued.client.tenant
    return client


@pytest.fixture
def other_api(other_tenant):
    issued = api_client_create(tenant=other_tenant, name="Other shop")
    tokens = api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)
    return bearer(tokens["access"])


@pytest.fixture
def signing_key(tenant):
    return end_user_key_register(tenant=tenant, name="Shop login", algorithm="HS256", key=HS_SECRET)


def end_user_token(key, sub: str, *, lifetime: int = 600, secret: str = HS_SECRET, algorithm: str = "HS256", **claims) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + lifetime, "iat": int(time.time()), **claims}
    return jwt.encode(payload, secret, algorithm=algorithm, headers={"kid": key.kid})


@pytest.fixture
def end_user(signing_key):
    """An APIClient acting as end user `alice` of `tenant` (a token signed by the tenant's login service)."""
    client = bearer(end_user_token(signing_key, "alice"))
    client.user_id = "alice"
    return client


@pytest.fixture
def active_book(tenant):
    return CouponBookFactory(tenant=tenant, name="Summer sale", discount_value=10)


@pytest.fixture
def make_code(active_book):
    def make(user_id=None, book=None, **kwargs):
        book = book or active_book
        code = CodeFactory(book=book, code=f"C{secrets.token_hex(5).upper()}", **kwargs)
        if user_id is not None:
            code.user_id = user_id
            code.state = "assigned"
            code.save(update_fields=["user_id", "state"])
        return code

    return make


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is the JSON error shape with this status (and code)."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    details = body["error"]["details"]
    assert isinstance(details, dict), body
    if body["error"]["code"] == "invalid_input":
        # The documented shape: the first invalid input's path, and each invalid input with its message.
        errors = details["errors"]
        assert errors and all(set(error) == {"field", "message"} for error in errors), body
        assert all(isinstance(error["field"], str) and error["message"] for error in errors), body
        assert details["field"] == errors[0]["field"], body
    return body["error"]
