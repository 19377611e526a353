"""Tokens: API clients' credentials for JWTs, refresh, revocation at once; end-user tokens and their keys."""

import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rest_framework_simplejwt.tokens import AccessToken

from api.models import EndUserSigningKey
from api.services import end_user_key_register, end_user_key_revoke
from tenants.services import api_client_revoke

from .conftest import HS_SECRET, assert_error, bearer, end_user_token

pytestmark = pytest.mark.django_db


def obtain(http, issued):
    return http.post("/api/v1/auth/token/", {"client_id": issued.client.client_id, "client_secret": issued.secret}, format="json")


def test_client_credentials_give_tokens_that_carry_the_tenant(http, issued, tenant):
    response = obtain(http, issued)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    claims = jwt.decode(body["access"], options={"verify_signature": False})
    assert claims["tenant_id"] == tenant.pk and claims["client_id"] == issued.client.client_id
    assert bearer(body["access"]).get("/api/v1/books/").status_code == 200
    issued.client.refresh_from_db()
    assert issued.client.last_used_at is not None


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "cli_unknown", "client_secret": "nope"},
        {"client_id": "cli_x\u202e", "client_secret": "\U0001f4a5"},
    ],
)
def test_wrong_credentials_answer_401(http, issued, body):
    assert_error(http.post("/api/v1/auth/token/", body, format="json"), 401, "authentication_failed")


def test_a_wrong_secret_for_a_real_client_answers_401(http, issued):
    body = {"client_id": issued.client.client_id, "client_secret": issued.secret + "x"}
    assert_error(http.post("/api/v1/auth/token/", body, format="json"), 401, "authentication_failed")


@pytest.mark.parametrize(
    "body", [{}, {"client_id": 1, "client_secret": 2}, {"client_id": "a" * 65, "client_secret": "b"}, {"client_id": "\x00"}]
)
def test_malformed_token_requests_answer_400(http, body):
    assert_error(http.post("/api/v1/auth/token/", body, format="json"), 400, "invalid_input")


def test_refresh_gives_a_new_access_token(http, issued):
    refresh = obtain(http, issued).json()["refresh"]
    response = http.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert response.status_code == 200
    assert bearer(response.json()["access"]).get("/api/v1/books/").status_code == 200


def test_an_access_token_is_not_a_refresh_token(http, issued):
    access = obtain(http, issued).json()["access"]
    assert_error(http.post("/api/v1/auth/token/refresh/", {"refresh": access}, format="json"), 401, "authentication_failed")
    assert_error(http.post("/api/v1/auth/token/refresh/", {"refresh": "junk"}, format="json"), 401, "authentication_failed")
    assert_error(http.post("/api/v1/auth/token/refresh/", {}, format="json"), 400, "invalid_input")


def test_a_refresh_token_cannot_be_used_as_an_access_token(http, issued):
    refresh = obtain(http, issued).json()["refresh"]
    assert_error(bearer(refresh).get("/api/v1/books/"), 401, "authentication_failed")


def test_a_revoked_client_loses_access_at_once(http, issued):
    tokens = obtain(http, issued).json()
    api = bearer(tokens["access"])
    assert api.get("/api/v1/books/").status_code == 200
    api_client_revoke(client=issued.client)
    assert_error(api.get("/api/v1/books/"), 401, "authentication_failed")
    assert_error(http.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"), 401)
    assert_error(obtain(http, issued), 401, "authentication_failed")


def test_an_expired_access_token_answers_401(http, issued):
    token = AccessToken()  # signed with the real key, expired two minutes ago (beyond the 30 s leeway)
    token["tenant_id"] = issued.client.tenant_id
    token["client_id"] = issued.client.client_id
    token.set_exp(lifetime=timedelta(seconds=-120))
    assert_error(bearer(str(token)).get("/api/v1/books/"), 401, "authentication_failed")


def test_a_token_signed_with_another_key_answers_401(issued):
    forged = jwt.encode(
        {
            "tenant_id": issued.client.tenant_id,
            "client_id": issued.client.client_id,
            "token_type": "access",
            "exp": time.time() + 60,
        },
        "not-our-key-" * 4,
        algorithm="HS256",
    )
    assert_error(bearer(forged).get("/api/v1/books/"), 401, "authentication_failed")


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer \u00e9t\u00e9", "Basic abc"])
def test_malformed_authorization_headers_answer_401(header):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/books/")
    assert_error(response, 401)


# --- End-user tokens ------------------------------------------------------------------------------------------


def test_an_hs256_end_user_token_acts_for_its_sub(signing_key, make_code):
    code = make_code(user_id="alice")
    client = bearer(end_user_token(signing_key, "alice"))
    response = client.post(f"/api/v1/codes/{code.code}/lock/", {}, format="json")
    assert response.status_code == 201
    assert response.json()["user_id"] == "alice"
    assert client.get("/api/v1/users/alice/codes/").json()["results"][0]["code"] == code.code


def test_an_rs256_end_user_token_is_checked_with_the_public_key(tenant, make_code):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = end_user_key_register(tenant=tenant, name="Login (RSA)", algorithm="RS256", key=pem)
    code = make_code(user_id="carol")
    token = jwt.encode({"sub": "carol", "exp": int(time.time()) + 300}, private, algorithm="RS256", headers={"kid": key.kid})
    assert bearer(token).get(f"/api/v1/codes/{code.code}/validate/").json()["valid"] is True
    # The same claims signed with HS256 and the public key as secret (algorithm confusion) are refused.
    confused = jwt.encode({"sub": "carol", "exp": int(time.time()) + 300}, "x" * 64, algorithm="HS256", headers={"kid": key.kid})
    assert_error(bearer(confused).get(f"/api/v1/codes/{code.code}/validate/"), 401, "authentication_failed")


@pytest.mark.parametrize(
    ("claims", "lifetime"),
    [({"sub": ""}, 300), ({"sub": 42}, 300), ({"sub": "u" * 256}, 300), ({}, -600), ({}, 10 * 24 * 3600)],
    ids=["empty sub", "numeric sub", "long sub", "expired", "too long-lived"],
)
def test_bad_end_user_tokens_answer_401(signing_key, claims, lifetime):
    payload = {"sub": "alice", "exp": int(time.time()) + lifetime, **claims}
    token = jwt.encode(payload, HS_SECRET, algorithm="HS256", headers={"kid": signing_key.kid})
    assert_error(bearer(token).get("/api/v1/users/alice/codes/"), 401, "authentication_failed")


def test_end_user_tokens_need_sub_and_exp(signing_key):
    for payload in ({"exp": int(time.time()) + 60}, {"sub": "alice"}):
        token = jwt.encode(payload, HS_SECRET, algorithm="HS256", headers={"kid": signing_key.kid})
        assert_error(bearer(token).get("/api/v1/users/alice/codes/"), 401, "authentication_failed")


def test_unknown_or_revoked_keys_answer_401(tenant, signing_key):
    token = end_user_token(signing_key, "alice")
    assert bearer(token).get("/api/v1/users/alice/codes/").status_code == 200
    end_user_key_revoke(tenant=tenant, kid=signing_key.kid)
    assert_error(bearer(token).get("/api/v1/users/alice/codes/"), 401, "authentication_failed")
    unknown = jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, HS_SECRET, algorithm="HS256", headers={"kid": "euk_nope"})
    assert_error(bearer(unknown).get("/api/v1/users/a/codes/"), 401, "authentication_failed")


def test_an_end_user_acts_only_in_the_keys_tenant(signing_key, other_tenant):
    from tests.factories import CodeFactory, CouponBookFactory

    foreign = CodeFactory(book=CouponBookFactory(tenant=other_tenant), code="FOREIGN-1", user_id="alice", state="assigned")
    assert_error(
        bearer(end_user_token(signing_key, "alice")).get(f"/api/v1/codes/{foreign.code}/validate/"), 404, "code_not_found"
    )


# --- Signing keys: service and endpoints ------------------------------------------------------------------------


def test_signing_key_registration_checks_the_key(api):
    """At the edge: SigningKeyInput runs api.inputs.key_material_clean before the service stores anything."""

    def register(algorithm: str, key: str) -> dict:
        response = api.post("/api/v1/end-user-keys/", {"name": "k", "algorithm": algorithm, "key": key}, format="json")
        return assert_error(response, 400, "invalid_input")

    assert register("HS256", "short")["details"]["field"] == "key"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert register("RS256", private_pem)["details"]["field"] == "key"
    assert register("none", "x" * 40)["details"]["field"] == "algorithm"
    assert not EndUserSigningKey.objects.exists()


def test_signing_key_endpoints_register_list_and_revoke(api, tenant):
    created = api.post("/api/v1/end-user-keys/", {"name": "Login", "algorithm": "HS256", "key": HS_SECRET}, format="json")
    assert created.status_code == 201
    kid = created.json()["kid"]
    assert "key" not in created.json()
    assert [k["kid"] for k in api.get("/api/v1/end-user-keys/").json()["results"]] == [kid]
    key = EndUserSigningKey.objects.get(kid=kid)
    assert key.tenant == tenant and key.is_active
    token = end_user_token(key, "dave")
    assert bearer(token).get("/api/v1/users/dave/codes/").status_code == 200
    revoked = api.delete(f"/api/v1/end-user-keys/{kid}/")
    assert revoked.status_code == 200 and revoked.json()["is_active"] is False
    assert_error(bearer(token).get("/api/v1/users/dave/codes/"), 401)
    assert_error(api.delete("/api/v1/end-user-keys/euk_unknown/"), 404, "signing_key_not_found")
