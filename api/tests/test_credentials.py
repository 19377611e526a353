"""API credentials without a query per request (api/credentials.py): each process keeps its client and key rows,
checked against a version in the shared cache, and a revocation still takes effect at once in every process.

Two CredentialCache objects stand for two web processes: each has its own memory, both use the shared cache."""

import pytest
import redis
from django.core.cache import cache

from api import credentials
from api.credentials import CredentialCache, client_version_key, credential_cache, signing_key_version_key
from api.services import end_user_key_revoke
from tenants.models import ApiClient
from tenants.services import api_client_revoke

from .conftest import assert_error, bearer, end_user_token


@pytest.fixture(autouse=True)
def fresh_entries():
    credential_cache.forget()
    yield
    credential_cache.forget()


def client_row(client_id: str):
    return lambda: ApiClient.objects.select_related("tenant").filter(client_id=client_id, is_active=True).first()


def test_a_known_client_costs_no_query_and_a_revoke_reaches_every_process_at_once(
    issued, django_assert_num_queries, django_capture_on_commit_callbacks
):
    client_id = issued.client.client_id
    key = client_version_key(client_id)
    first, second = CredentialCache(), CredentialCache()
    assert first.get(key, client_row(client_id)) == issued.client
    assert second.get(key, client_row(client_id)) == issued.client
    with django_assert_num_queries(0):
        assert first.get(key, client_row(client_id)) == issued.client
        assert second.get(key, client_row(client_id)) == issued.client
    with django_capture_on_commit_callbacks(execute=True):
        api_client_revoke(client=issued.client)
    with django_assert_num_queries(1):
        assert first.get(key, client_row(client_id)) is None
    with django_assert_num_queries(1):
        assert second.get(key, client_row(client_id)) is None


def test_a_process_that_read_the_row_before_the_revoke_committed_reads_it_again(issued, django_capture_on_commit_callbacks):
    """The version is written at the save and again after the commit: a row read in between is never trusted."""
    client_id = issued.client.client_id
    key = client_version_key(client_id)
    other_process = CredentialCache()
    with django_capture_on_commit_callbacks(execute=False) as on_commit:
        api_client_revoke(client=issued.client)
        # Another process reads now, before the commit: it would still see the client active (simulated).
        stale = other_process.get(key, lambda: issued.client)
        assert stale == issued.client
    for callback in on_commit:  # the commit
        callback()
    assert other_process.get(key, client_row(client_id)) is None


def test_a_lost_version_is_a_new_version(issued, django_assert_num_queries):
    """Redis restarted or the key evicted: the next reader writes a new random version, never an old one."""
    client_id = issued.client.client_id
    key = client_version_key(client_id)
    process = CredentialCache()
    process.get(key, client_row(client_id))
    shared = credentials._redis()
    shared.delete(key) if shared is not None else cache.delete(key)
    with django_assert_num_queries(1):
        process.get(key, client_row(client_id))


@pytest.fixture
def shared_cache_down(monkeypatch, dead_redis_url, cache_unreachable):
    """Redis refuses connections, whether the versions live there (REDIS_URL) or in Django's cache."""
    monkeypatch.setattr(credentials, "_redis", lambda: redis.Redis.from_url(dead_redis_url, socket_connect_timeout=0.25))


def test_with_the_cache_down_every_request_reads_the_row_and_a_revoke_is_seen_at_once(issued, api, shared_cache_down, caplog):
    assert api.get("/api/v1/books/").status_code == 200
    assert api.get("/api/v1/books/").status_code == 200
    assert [r for r in caplog.records if "unreachable" in r.getMessage() and r.name == "api.credentials"]
    api_client_revoke(client=issued.client)
    assert_error(api.get("/api/v1/books/"), 401, "authentication_failed")


def test_an_entry_is_read_again_after_its_maximum_age(issued, settings, django_assert_num_queries):
    settings.COUPONS = {**settings.COUPONS, "API_CREDENTIALS_MAX_AGE": 0}
    client_id = issued.client.client_id
    process = CredentialCache()
    process.get(client_version_key(client_id), client_row(client_id))
    with django_assert_num_queries(1):
        process.get(client_version_key(client_id), client_row(client_id))


def test_a_tenant_edit_is_seen_by_its_clients_at_once(api, issued):
    assert api.get("/api/v1/books/").status_code == 200
    cached = credential_cache.get(client_version_key(issued.client.client_id), lambda: None)
    assert cached.tenant.timezone == issued.client.tenant.timezone != "Asia/Tokyo"
    tenant = issued.client.tenant
    tenant.timezone = "Asia/Tokyo"
    tenant.save()
    fresh = credential_cache.get(client_version_key(issued.client.client_id), client_row(issued.client.client_id))
    assert fresh.tenant.timezone == "Asia/Tokyo"


def test_a_revoked_signing_key_is_refused_at_once(signing_key, tenant, make_code):
    user = bearer(end_user_token(signing_key, "alice"))
    code = make_code(user_id="alice")
    assert user.get(f"/api/v1/codes/{code.code}/validate/").status_code == 200
    assert credential_cache.get(signing_key_version_key(signing_key.kid), lambda: None) == signing_key
    end_user_key_revoke(tenant=tenant, kid=signing_key.kid)
    assert_error(user.get(f"/api/v1/codes/{code.code}/validate/"), 401, "authentication_failed")


def test_a_verified_token_is_still_refused_once_it_expires(api, issued, monkeypatch):
    """Verified client tokens are kept with their claims (no second signature check); the expiry is checked on
    every use."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from api import authentication

    assert api.get("/api/v1/books/").status_code == 200
    assert api.get("/api/v1/books/").status_code == 200  # from the verified tokens
    (claims,) = [c for c in authentication._verified_tokens.values() if c["client_id"] == issued.client.client_id]
    later = claims["exp"] + 31  # past the 30 s leeway
    monkeypatch.setattr(authentication, "time", SimpleNamespace(time=lambda: later))
    monkeypatch.setattr("rest_framework_simplejwt.tokens.aware_utcnow", lambda: datetime.fromtimestamp(later, UTC))
    assert_error(api.get("/api/v1/books/"), 401, "authentication_failed")


def test_a_warm_request_reads_its_version_in_the_throttle_round_trip(api, issued, monkeypatch, settings):
    """The entry a process holds is used at once, and its version comes back from the rate-limit script: no GET of
    its own (one Redis round trip less per request)."""
    if not settings.REDIS_URL:
        pytest.skip("the counters are on Redis only with REDIS_URL")
    assert api.get("/api/v1/books/").status_code == 200

    def no_separate_read(version_key):
        raise AssertionError(f"{version_key} was read in a round trip of its own")

    monkeypatch.setattr(credentials, "_versions_read", no_separate_read)
    assert api.get("/api/v1/books/").status_code == 200


def test_a_revoke_is_seen_at_once_by_a_process_holding_the_entry(api, issued):
    assert api.get("/api/v1/books/").status_code == 200
    assert api.get("/api/v1/books/").status_code == 200  # from the process's entry
    api_client_revoke(client=issued.client)
    assert_error(api.get("/api/v1/books/"), 401, "authentication_failed")
    assert_error(api.post("/api/v1/books/", {}, format="json"), 401, "authentication_failed")


def test_a_revoked_key_is_refused_401_where_its_token_lacks_the_permission(signing_key, tenant, make_code):
    """The permission check runs before the throttle's round trip: a revoked caller is still told 401, not 403."""
    user = bearer(end_user_token(signing_key, "alice"))
    code = make_code(user_id="alice")
    assert user.get(f"/api/v1/codes/{code.code}/validate/").status_code == 200
    assert_error(user.get("/api/v1/books/"), 403, "permission_denied")
    end_user_key_revoke(tenant=tenant, kid=signing_key.kid)
    assert_error(user.get("/api/v1/books/"), 401, "authentication_failed")


def test_a_tenant_edit_reaches_the_handler_of_the_next_request(api, issued, monkeypatch):
    """An entry whose version moved is read again before the handler runs: the handler sees the new row."""
    from api.views.books import BookListView

    assert api.get("/api/v1/books/").status_code == 200
    tenant = issued.client.tenant
    tenant.timezone = "Asia/Tokyo"
    tenant.save()
    seen, listed = [], BookListView.get

    def spy(view, request, *args, **kwargs):
        seen.append(request.user.tenant.timezone)
        return listed(view, request, *args, **kwargs)

    monkeypatch.setattr(BookListView, "get", spy)
    assert api.get("/api/v1/books/").status_code == 200
    assert seen == ["Asia/Tokyo"]
