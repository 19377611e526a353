"""Rate limits (SPEC "Abuse resistance"): atomic counters, per end-user guessing limits, the client-wide ceiling,
the address behind trusted proxies, the token endpoint's cost, and the fallback while the shared cache is down."""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import hashers
from django.test import RequestFactory
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage

from api import ratelimit
from api.ratelimit import ResilientLimiter, limiter
from core.addresses import client_address
from tenants.services import api_client_authenticate, api_client_create

from .conftest import assert_error, bearer, end_user_token
from .httpclient import http_call


@pytest.fixture(autouse=True)
def fresh_counters():
    limiter().reset()
    yield
    limiter().reset()


def rates(settings, **values):
    base = {"auth": "1000/min", "auth_address": "1000/min", "read": "100000/min", "write": "100000/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**base, **values}}


# --- Atomic counters under a parallel burst ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_parallel_burst_of_failed_lookups_gets_no_more_than_the_limit_through(live_server, tenant, settings):
    """Before: DRF's read-modify-write list of timestamps let 42 to 137 misses through a 30/min limit."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    rates(settings, lookup_failed="30/min", lookup_failed_client="100000/min")
    issued = api_client_create(tenant=tenant, name="Guesser")
    base = live_server.url
    token = http_call(
        base, "POST", "/api/v1/auth/token/", {"client_id": issued.client.client_id, "client_secret": issued.secret}
    ).json()["access"]
    start = threading.Barrier(16)

    def guess(n: int):
        if n < 16:
            start.wait()
        return http_call(base, "GET", f"/api/v1/codes/GUESS-{n:04d}/validate/?user_id=mallory", token=token, timeout=60)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = [answer.status for answer in pool.map(guess, range(120))]

    assert statuses.count(404) == 30, sorted(statuses)
    assert statuses.count(429) == 90, sorted(statuses)


def test_the_counter_is_one_atomic_increment_per_hit_in_every_thread():
    item = RateLimitItemPerMinute(50)
    counters = ResilientLimiter(MemoryStorage())
    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = list(pool.map(lambda n: counters.hit(item, "burst").allowed, range(400)))
    assert allowed.count(True) == 50


# --- Per end user, with a client-wide ceiling --------------------------------------------------------------------


def test_one_shopper_guessing_does_not_lock_out_the_other_shoppers(api, make_code, settings):
    rates(settings, lookup_failed="3/min", lookup_failed_client="1000/min")
    other = make_code(user_id="bob")
    for n in range(3):
        assert_error(api.get(f"/api/v1/codes/GUESS-{n}/validate/?user_id=mallory"), 404, "code_not_found")
    assert_error(api.get("/api/v1/codes/GUESS-9/validate/?user_id=mallory"), 429, "throttled")
    # Bob, a shopper of the same shop (same API client), still validates and redeems.
    assert api.get(f"/api/v1/codes/{other.code}/validate/?user_id=bob").status_code == 200
    answer = api.post(f"/api/v1/codes/{other.code}/redeem/", {"user_id": "bob", "order_ref": "o-1"}, format="json")
    assert answer.status_code == 201, answer.content


def test_a_limited_guesser_is_refused_on_existing_codes_too(api, make_code, settings):
    rates(settings, lookup_failed="2/min", lookup_failed_client="1000/min")
    own = make_code(user_id="mallory")
    for n in range(2):
        api.post(f"/api/v1/codes/GUESS-{n}/lock/", {"user_id": "mallory"}, format="json")
    # The same 429 for a code that exists as for one that does not: the refusal reveals nothing.
    existing = api.get(f"/api/v1/codes/{own.code}/validate/?user_id=mallory")
    unknown = api.get("/api/v1/codes/NO-SUCH-CODE/validate/?user_id=mallory")
    assert_error(existing, 429, "throttled")
    assert_error(unknown, 429, "throttled")
    assert existing.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_successful_lookups_give_their_slot_back(api, make_code, settings):
    rates(settings, lookup_failed="2/min", lookup_failed_client="2/min")
    code = make_code(user_id="bob")
    for _ in range(10):
        assert api.get(f"/api/v1/codes/{code.code}/validate/?user_id=bob").status_code == 200
    assert_error(api.get("/api/v1/codes/GUESS-1/validate/?user_id=bob"), 404, "code_not_found")


def test_end_user_guesses_count_per_token_subject(signing_key, make_code, settings):
    rates(settings, lookup_failed="2/min", lookup_failed_client="1000/min")
    mallory = bearer(end_user_token(signing_key, "mallory"))
    alice_code = make_code(user_id="alice")
    alice = bearer(end_user_token(signing_key, "alice"))
    for n in range(2):
        assert_error(mallory.get(f"/api/v1/codes/GUESS-{n}/validate/"), 404, "code_not_found")
    assert_error(mallory.get("/api/v1/codes/GUESS-3/validate/"), 429, "throttled")
    assert alice.get(f"/api/v1/codes/{alice_code.code}/validate/").status_code == 200


def test_the_client_wide_ceiling_holds_across_user_ids_and_is_logged(api, settings, caplog):
    rates(settings, lookup_failed="100/min", lookup_failed_client="5/min")
    with caplog.at_level(logging.WARNING, logger="api.throttling"):
        statuses = [api.get(f"/api/v1/codes/GUESS-{n}/validate/?user_id=user-{n}").status_code for n in range(8)]
    assert statuses == [404] * 5 + [429] * 3
    ceiling = [r for r in caplog.records if "client-wide failed code look-up ceiling" in r.getMessage()]
    assert len(ceiling) == 1  # once per window, not once per refused request


# --- Token endpoint: the address behind trusted proxies, and the cost of an unknown client id --------------------


def test_rotating_x_forwarded_for_does_not_lift_the_token_limit(http, issued, settings):
    rates(settings, auth="3/min", auth_address="1000/min")
    body = {"client_id": issued.client.client_id, "client_secret": "wrong"}
    statuses = [
        http.post("/api/v1/auth/token/", body, format="json", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(6)
    ]
    assert statuses == [401, 401, 401, 429, 429, 429]


def test_rotating_client_ids_from_one_address_hits_the_address_limit(http, settings, db):
    rates(settings, auth="1000/min", auth_address="4/min")
    statuses = [
        http.post("/api/v1/auth/token/", {"client_id": f"cli_made_up_{n}", "client_secret": "x"}, format="json").status_code
        for n in range(6)
    ]
    assert statuses == [401] * 4 + [429] * 2


def test_the_client_address_is_read_behind_the_configured_number_of_proxies(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request) == "10.1.1.1"  # X-Forwarded-For is written by anyone: ignored
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_address(request) == "203.0.113.7"  # the address our one proxy saw; 6.6.6.6 is the client's claim
    settings.TRUSTED_PROXY_COUNT = 5
    assert client_address(request) == "6.6.6.6"


def test_an_unknown_client_id_costs_one_password_hash_like_a_known_one(issued, monkeypatch):
    calls = []
    real = hashers.MD5PasswordHasher.verify

    def counting(self, password, encoded):
        calls.append(encoded)
        return real(self, password, encoded)

    api_client_authenticate(client_id="cli_warm", secret="x")  # the dummy hash is made once per hasher
    monkeypatch.setattr(hashers.MD5PasswordHasher, "verify", counting)
    assert api_client_authenticate(client_id=issued.client.client_id, secret="wrong") is None
    known = len(calls)
    assert api_client_authenticate(client_id="cli_does_not_exist", secret="wrong") is None
    assert known == 1 and len(calls) == 2


# --- The shared cache down: a documented fallback, never a 500 ----------------------------------------------------


class BrokenStorage(MemoryStorage):
    """A storage that fails like a Redis that went away, until `healthy` is set."""

    def __init__(self):
        super().__init__()
        self.healthy = False
        self.calls = 0

    def incr(self, key, expiry, amount=1):
        self.calls += 1
        if not self.healthy:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return super().incr(key, expiry, amount)

    def get_expiry(self, key):
        if not self.healthy:
            raise ConnectionError("Connection refused.")
        return super().get_expiry(key)


def test_a_failing_storage_falls_back_to_memory_logs_once_and_recovers(caplog, monkeypatch):
    broken = BrokenStorage()
    counters = ResilientLimiter(broken)
    item = RateLimitItemPerMinute(3)
    with caplog.at_level(logging.WARNING, logger="api.ratelimit"):
        allowed = [counters.hit(item, "k").allowed for _ in range(5)]
    assert allowed == [True, True, True, False, False]  # still limited, in this process's memory
    assert counters.degraded
    assert broken.calls == 1  # not retried on every request while it is down
    outage = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage) == 1
    # Back up: after the retry interval the shared storage counts again, without a restart.
    broken.healthy = True
    monkeypatch.setattr(ratelimit, "RETRY_PRIMARY_SECONDS", 0.0)
    counters.outage.retry_at = 0.0
    with caplog.at_level(logging.WARNING, logger="api.ratelimit"):
        assert counters.hit(item, "k").allowed
    assert not counters.degraded
    assert broken.get(item.key_for("k")) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_the_api_keeps_answering_with_the_cache_down(api, make_code, settings, monkeypatch):
    rates(settings, read="3/min", lookup_failed="2/min", lookup_failed_client="1000/min")
    monkeypatch.setattr(ratelimit, "limiter", lambda: down)
    down = ResilientLimiter(BrokenStorage())
    monkeypatch.setattr("api.throttling.limiter", lambda: down)
    code = make_code(user_id="bob")
    assert api.get(f"/api/v1/codes/{code.code}/?user_id=bob").status_code == 200
    assert_error(api.get("/api/v1/codes/GUESS-1/validate/?user_id=eve"), 404, "code_not_found")
    assert_error(api.get("/api/v1/codes/GUESS-2/validate/?user_id=eve"), 404, "code_not_found")
    assert_error(api.get("/api/v1/codes/GUESS-3/validate/?user_id=eve"), 429, "throttled")


def test_end_users_of_one_signing_key_share_the_client_wide_ceiling(signing_key, settings):
    rates(settings, lookup_failed="100/min", lookup_failed_client="3/min")
    statuses = [
        bearer(end_user_token(signing_key, f"user-{n}")).get(f"/api/v1/codes/GUESS-{n}/validate/").status_code for n in range(5)
    ]
    assert statuses == [404, 404, 404, 429, 429]


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own on a free port (never the shared one), and a way to stop and restart it."""
    import shutil
    import socket
    import subprocess
    import time

    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed for this test"
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    processes = []

    def start():
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def kill():
        processes[-1].kill()
        processes[-1].wait()

    start()
    yield {"url": f"redis://127.0.0.1:{port}/0", "kill": kill, "start": start}
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_killed_redis_degrades_to_memory_and_the_restarted_one_is_used_again(private_redis, monkeypatch, caplog):
    from limits.storage import storage_from_string

    storage = storage_from_string(private_redis["url"], socket_connect_timeout=0.25, socket_timeout=0.5)
    counters = ResilientLimiter(storage)
    item = RateLimitItemPerMinute(100)
    assert counters.hit(item, "k").count == 1 and storage.get(item.key_for("k")) == 1
    private_redis["kill"]()
    with caplog.at_level(logging.WARNING, logger="api.ratelimit"):
        assert counters.hit(item, "k").allowed  # counted in memory, no exception
        assert counters.hit(item, "k").allowed
    assert counters.degraded
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    private_redis["start"]()
    counters.outage.retry_at = 0.0  # the retry interval has passed
    assert counters.hit(item, "k").allowed
    assert not counters.degraded and storage.get(item.key_for("k")) == 1  # an empty restarted Redis counts again


def test_a_refund_after_the_window_ended_leaves_no_counter_for_ever():
    """The refund of a hit whose window ended meanwhile must not leave a -1 without expiry (a permanent extra slot)."""
    storage = limiter().primary
    if storage is None:  # no REDIS_URL: the memory storage expires its keys itself
        storage = limiter().fallback
    counters = ResilientLimiter(storage)
    item = RateLimitItemPerMinute(5)
    hit = counters.hit(item, "refund-late")
    storage.clear(item.key_for("refund-late"))  # the window ended
    counters.refund_all([(item, hit)])
    assert storage.get(item.key_for("refund-late")) == -1
    assert storage.get_expiry(item.key_for("refund-late")) > __import__("time").time()  # it expires with the window
