"""SQL statements the HTTP layer adds to the checkout cycle (SPEC "Performance targets": at most 12 per cycle,
and an Idempotency-Key adds at most 2 per call). The services' own statements are counted in the books tests; here,
what the API puts around them: nothing without a key (authentication, throttles and serializers run no query), and
the key's claim and answer with one (the key's transaction replaces the service's BEGIN/COMMIT)."""

import json
from dataclasses import dataclass, field

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.credentials import credential_cache
from api.ratelimit import limiter
from tests.factories import CodeFactory


@dataclass
class Counted:
    total: int = 0
    inside: int = 0  # statements run inside the service calls
    service_calls: list[str] = field(default_factory=list)
    inside_ranges: list[tuple[int, int]] = field(default_factory=list)
    outside_sql: list[str] = field(default_factory=list)  # the first words of each statement outside them
    all_sql: list[str] = field(default_factory=list)

    @property
    def outside(self) -> int:
        return self.total - self.inside


@pytest.fixture
def count_cycle(monkeypatch, api, active_book):
    """Runs assign -> lock -> redeem over the API and counts its statements, inside and outside the services."""
    import api.views.books as book_views
    import api.views.codes as code_views

    credential_cache.forget()
    limiter().reset()
    for n in range(8):  # free codes for the random assignments
        CodeFactory(book=active_book, code=f"FREE{n:04d}")
    current: dict = {}

    def counting(name, service):
        def wrapper(**kwargs):
            captured, counted = current["captured"], current["counted"]
            before = len(captured.captured_queries)
            try:
                return service(**kwargs)
            finally:
                counted.inside += len(captured.captured_queries) - before
                counted.service_calls.append(name)
                counted.inside_ranges.append((before, len(captured.captured_queries)))

        return wrapper

    monkeypatch.setattr(book_views, "code_assign_random", counting("assign", book_views.code_assign_random))
    monkeypatch.setattr(code_views, "code_reserve", counting("lock", code_views.code_reserve))
    monkeypatch.setattr(code_views, "code_redeem", counting("redeem", code_views.code_redeem))

    def post(path: str, body: dict, key: str | None):
        extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        response = api.post(path, json.dumps(body), content_type="application/json", **extra)
        assert response.status_code == 201, (path, response.status_code, response.content[:300])
        return response.json()

    def run(user: str, *, keys: bool) -> Counted:
        counted = Counted()
        with CaptureQueriesContext(connection) as captured:
            current.update(captured=captured, counted=counted)
            code = post(f"/api/v1/books/{active_book.pk}/assign/", {"user_id": user}, keys and f"{user}-a")["code"]
            lock = post(f"/api/v1/codes/{code}/lock/", {"user_id": user}, keys and f"{user}-l")
            body = {"user_id": user, "token": lock["token"], "amount": "25.00", "currency": "EUR"}
            post(f"/api/v1/codes/{code}/redeem/", body, keys and f"{user}-r")
        counted.total = len(captured.captured_queries)
        counted.all_sql = [query["sql"] for query in captured.captured_queries]
        inside = {index for start, end in counted.inside_ranges for index in range(start, end)}
        counted.outside_sql = [" ".join(sql.split()[:3]) for index, sql in enumerate(counted.all_sql) if index not in inside]
        assert counted.service_calls == ["assign", "lock", "redeem"]
        return counted

    return run


# Outside a test transaction: the calls' own BEGIN/COMMIT are what is counted (inside one they would be savepoints).
pytestmark = pytest.mark.django_db(transaction=True)


def test_the_http_layer_adds_no_statement_to_the_cycle(count_cycle):
    count_cycle("warm-up", keys=False)  # fills this process's credential entry (one read of the client row)
    counted = count_cycle("shopper", keys=False)
    assert counted.outside == 0, counted


def test_an_idempotency_key_adds_two_statements_per_call(count_cycle):
    count_cycle("warm-up", keys=False)
    keyed = count_cycle("shopper", keys=True)
    # Around each call: BEGIN, the key's claim, the answer, COMMIT. The service runs in that transaction without a
    # savepoint, so its own BEGIN/COMMIT are these: the key adds the claim and the answer, two statements.
    table = "api_idempotencykey"
    call = ["BEGIN", f"INSERT INTO {table}", f"UPDATE {table} SET", "COMMIT"]
    assert [" ".join(sql.split()[:3]) if "idempotency" in sql else sql for sql in keyed.outside_sql] == call * 3, keyed
    assert not [sql for sql in keyed.all_sql if "SAVEPOINT" in sql]
