"""The lifecycle's statements (books/lifecycle_sql.py): how many each call issues, the lock order inside the
fetch-and-lock statement, and the webhook outbox folded into the event's statement.

The counts are counts, not times: a change that adds a round trip to a hot call fails here, in `make test`,
instead of only showing as a slower benchmark. They run in a transactional database, so BEGIN and COMMIT are the
real ones and are counted, as the SPEC's "statements per cycle" counts them.
"""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from functools import partial
from unittest import mock

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from books import lifecycle_sql
from books.models import Code, Event
from books.services.codes import (
    code_assign,
    code_assign_random,
    code_redeem,
    code_release,
    code_reserve,
    code_void,
    redemption_reverse,
    reservations_expire,
)
from core.exceptions import ApplicationError
from redemptions.models import Redemption
from tests.factories import CodeFactory, CouponBookFactory, ReservationFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint

from .concurrency import error_counts, run_concurrently, successes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def statements(call) -> list[str]:
    """The statements `call` sent, first word each (BEGIN and COMMIT included)."""
    with CaptureQueriesContext(connection) as captured:
        call()
    return [query["sql"].split(None, 1)[0].upper() for query in captured.captured_queries]


@pytest.fixture
def book(tenant):
    # The defaults of a new book: one code and one redemption per user, so every user lock is taken.
    return CouponBookFactory(tenant=tenant)


def test_assign_at_random_is_two_statements_between_begin_and_commit(book, actor):
    # The last key of the shuffle order: the walk from any random start finds it without wrapping round.
    CodeFactory(book=book, code="RND-1", shuffle=2**63 - 1)
    sent = statements(lambda: code_assign_random(tenant=book.tenant, book_id=book.pk, user_id="ann", actor=actor))
    # The book with the user's row locked; the claim with its event and the user's code count.
    assert sent == ["BEGIN", "WITH", "WITH", "COMMIT"]
    # From a start past every free code, the walk wraps round to the start of the order: one claim more.
    CodeFactory(book=book, code="RND-2", shuffle=0)
    with mock.patch("books.services.codes.shuffle_keys", return_value=[1]):
        sent = statements(lambda: code_assign_random(tenant=book.tenant, book_id=book.pk, user_id="bob", actor=actor))
    assert sent == ["BEGIN", "WITH", "WITH", "WITH", "COMMIT"]


def test_lock_and_redeem_with_its_token_are_two_statements_each(book, actor):
    CodeFactory(book=book, code="CYCLE-1", user_id="ann", state=Code.State.ASSIGNED)
    holder = {}

    def reserve():
        holder["reservation"] = code_reserve(tenant=book.tenant, code="CYCLE-1", user_id="ann", actor=actor)

    # The user's row and the code locked; the reservation with its event, returning the counts.
    assert statements(reserve) == ["BEGIN", "WITH", "WITH", "COMMIT"]
    token = holder["reservation"].token
    redeem = lambda: code_redeem(tenant=book.tenant, code="CYCLE-1", user_id="ann", actor=actor, token=token)  # noqa: E731
    # The code locked with the reservation read; the use with the redemption and its event.
    assert statements(redeem) == ["BEGIN", "SELECT", "WITH", "COMMIT"]


def test_redeem_without_a_token_is_two_statements(book, actor):
    CodeFactory(book=book, code="DIRECT-1", user_id="ann", state=Code.State.ASSIGNED)
    redeem = lambda: code_redeem(tenant=book.tenant, code="DIRECT-1", user_id="ann", actor=actor, amount=Decimal("5"))  # noqa: E731
    assert statements(redeem) == ["BEGIN", "WITH", "WITH", "COMMIT"]


def test_the_other_lifecycle_calls_keep_their_counts(book, actor):
    tenant = book.tenant
    CodeFactory(book=book, code="NAMED-1")
    assign = lambda: code_assign(tenant=tenant, code="NAMED-1", user_id="bob", actor=actor)  # noqa: E731
    # The locks; the user's code count; the update; the event with its outbox.
    assert statements(assign) == ["BEGIN", "WITH", "SELECT", "UPDATE", "WITH", "COMMIT"]

    reservation = code_reserve(tenant=tenant, code="NAMED-1", user_id="bob", actor=actor)
    release = lambda: code_release(tenant=tenant, code="NAMED-1", user_id="bob", actor=actor, token=reservation.token)  # noqa: E731
    # The code locked; its reservation locked; released; its event; the code's `held` counter.
    assert statements(release) == ["BEGIN", "SELECT", "SELECT", "UPDATE", "WITH", "UPDATE", "COMMIT"]

    redemption = code_redeem(tenant=tenant, code="NAMED-1", user_id="bob", actor=actor)
    reverse = lambda: redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=actor, reason="refund")  # noqa: E731
    assert statements(reverse) == ["BEGIN", "SELECT", "SELECT", "SELECT", "UPDATE", "UPDATE", "WITH", "COMMIT"]

    void = lambda: code_void(tenant=tenant, code="NAMED-1", actor=actor, reason="leaked")  # noqa: E731
    assert statements(void) == ["BEGIN", "SELECT", "UPDATE", "UPDATE", "WITH", "COMMIT"]


def test_the_fetch_and_lock_statement_locks_the_user_before_the_code(book, actor):
    """lock_objects' order, BookUser then Code, holds inside the one statement: while another transaction holds
    the user's row, a lock by that user waits for it WITHOUT holding the code, so nobody else waits on the code
    behind it (and no transaction can hold the code while waiting for the user: no deadlock)."""
    code = CodeFactory(book=book, code="ORDER-1", user_id="ann", state=Code.State.ASSIGNED)
    holder = connections.create_connection("default")
    waiter_done = threading.Event()
    outcome = {}

    def reserve_in_thread():
        try:
            outcome["reservation"] = code_reserve(tenant=book.tenant, code="ORDER-1", user_id="ann", actor=actor)
        except BaseException as exc:  # reported below
            outcome["error"] = exc
        finally:
            connection.close()
            waiter_done.set()

    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO books_bookuser (book_id, user_id) VALUES (%s, 'ann') "
                "ON CONFLICT (book_id, user_id) DO UPDATE SET user_id = EXCLUDED.user_id",
                [book.pk],
            )
            thread = threading.Thread(target=reserve_in_thread, daemon=True)
            thread.start()
            assert _waiting_on_a_lock(holder), ("the reserve never queued behind the user's row", outcome)
            # The code is free to lock: the waiting reserve does not hold it.
            cursor.execute("SELECT id FROM books_code WHERE id = %s FOR NO KEY UPDATE NOWAIT", [code.pk])
            assert not waiter_done.is_set()
            cursor.execute("COMMIT")
        thread.join(30)
    finally:
        holder.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["reservation"].code_id == code.pk


def _waiting_on_a_lock(conn, attempts: int = 200) -> bool:
    """True once another backend of this database waits on a lock (pg_stat_activity), polled."""
    with conn.cursor() as cursor:
        for _ in range(attempts):
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot of the view
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def test_the_event_statement_writes_the_webhook_deliveries_with_the_ids_it_inserts(book, actor):
    endpoint = WebhookEndpoint.objects.create(
        tenant=book.tenant, url="https://example.com/hook", events=["code.assigned", "code.locked", "code.redeemed"]
    )
    CodeFactory(book=book, code="HOOK-1")
    code = code_assign_random(tenant=book.tenant, book_id=book.pk, user_id="ann", actor=actor)
    reservation = code_reserve(tenant=book.tenant, code=code.code, user_id="ann", actor=actor)
    redemption = code_redeem(tenant=book.tenant, code=code.code, user_id="ann", actor=actor, token=reservation.token)
    deliveries = list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id"))
    bodies = [json.loads(d.body) for d in deliveries]
    assert [b["type"] for b in bodies] == ["code.assigned", "code.locked", "code.redeemed"]
    events = list(Event.objects.filter(code=code).order_by("id"))
    assert [b["data"]["event"] for b in bodies] == [e.pk for e in events]
    assigned, locked, redeemed = bodies
    assert assigned["data"]["code"] == "HOOK-1" and assigned["data"]["redeemed_count"] == 0 and assigned["data"]["random"]
    assert locked["data"]["reservation"]["id"] == reservation.pk and reservation.token not in deliveries[1].body
    assert redeemed["data"]["redemption"] == redemption.pk and redeemed["data"]["state"] == Code.State.REDEEMED
    assert events[2].data == {"redemption": redemption.pk, "order_ref": ""}
    assert {d.ordering_key for d in deliveries} == {f"code:{code.pk}"}


def test_text_sent_by_a_client_reaches_the_event_and_the_webhook_unchanged(book, actor):
    """The write statement splices ids into the JSON it stores: a client's text that looks like the splice's
    markers, or like SQL, is stored as sent."""
    WebhookEndpoint.objects.create(tenant=book.tenant, url="https://example.com/hook", events=["code.redeemed"])
    CodeFactory(book=book, code="TEXT-1", user_id="ann", state=Code.State.ASSIGNED)
    order_ref = '"~0123456789ab~0" 100% \\ \'); DROP TABLE x; -- ü'
    redemption = code_redeem(tenant=book.tenant, code="TEXT-1", user_id="ann", actor=actor, order_ref=order_ref)
    event = Event.objects.get(kind=Event.Kind.REDEEMED)
    assert event.data == {"redemption": redemption.pk, "order_ref": order_ref}
    body = json.loads(WebhookDelivery.objects.get().body)
    assert body["data"]["order_ref"] == order_ref and body["data"]["redemption"] == redemption.pk


def test_an_event_of_a_tenant_without_endpoints_writes_no_delivery(book, actor):
    CodeFactory(book=book, code="QUIET-1")
    code_assign_random(tenant=book.tenant, book_id=book.pk, user_id="ann", actor=actor)
    assert Event.objects.filter(kind=Event.Kind.ASSIGNED).count() == 1
    assert not WebhookDelivery.objects.exists()


def test_one_token_redeemed_by_ten_at_once_is_consumed_once(book, actor):
    """The reservation is read in the lock statement's snapshot, taken before the code's lock is granted: the
    redeems that waited for the winner still see it active there. The write consumes it only while it is
    active, and takes the use only once it has: the losers answer reservation_not_active, and no second
    redemption reaches the reservation's unique key."""
    CodeFactory(book=book, code="TWICE-1", user_id="ann", state=Code.State.ASSIGNED, max_uses=5)
    token = code_reserve(tenant=book.tenant, code="TWICE-1", user_id="ann", actor=actor).token
    redeem = partial(code_redeem, tenant=book.tenant, code="TWICE-1", user_id="ann", actor=actor, token=token)
    outcomes = run_concurrently([redeem] * 10)
    assert len(successes(outcomes)) == 1
    assert error_counts(outcomes) == {"reservation_not_active": 9}
    code = Code.objects.get(code="TWICE-1")
    assert (code.redeemed_count, Redemption.objects.filter(code=code).count()) == (1, 1)


def _held(code: str) -> int:
    return Code.objects.get(code=code).held


def test_the_held_counter_follows_every_hold_taken_and_ended(tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=5, max_redemptions_per_user=None)
    CodeFactory(book=book, code="HELD-1")
    first = code_reserve(tenant=tenant, code="HELD-1", user_id="ann", actor=actor)
    code_reserve(tenant=tenant, code="HELD-1", user_id="bob", actor=actor)
    code_reserve(tenant=tenant, code="HELD-1", user_id="cy", actor=actor)
    assert _held("HELD-1") == 3
    code_redeem(tenant=tenant, code="HELD-1", user_id="ann", actor=actor, token=first.token)  # consumed
    code_release(tenant=tenant, code="HELD-1", user_id="bob", actor=actor)  # released
    assert _held("HELD-1") == 1
    code_redeem(tenant=tenant, code="HELD-1", user_id="dee", actor=actor)  # no token: the counter is not a hold
    assert _held("HELD-1") == 1
    code_void(tenant=tenant, code="HELD-1", actor=actor)  # ends cy's hold
    assert _held("HELD-1") == 0


def test_a_hold_past_its_time_that_the_counter_still_counts_does_not_block_the_last_use(tenant, actor):
    """The counter refuses (no use left beyond the counted hold), so the redeem takes the locked path, which
    counts holds by their time, recounts the counter, and takes the use."""
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=1, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="STALE-1")
    ReservationFactory(code=code, user_id="ann", expires_at=timezone.now() - timedelta(seconds=1))
    redemption = code_redeem(tenant=tenant, code="STALE-1", user_id="bob", actor=actor)
    code.refresh_from_db()
    # Still counted: the hold is active by its status until the expiry task marks it.
    assert (redemption.user_id, code.redeemed_count, code.state, code.held) == ("bob", 1, Code.State.REDEEMED, 1)


def test_the_counter_is_recounted_when_it_refuses_a_use(tenant, actor):
    """The expiry task marks holds without locking their code, so it leaves them in `held`; the locked path,
    taken when the counter refuses, counts the code's active holds again."""
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=1, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="STALE-2")
    ReservationFactory(code=code, user_id="ann", expires_at=timezone.now() - timedelta(seconds=1))
    assert reservations_expire() == 1 and _held("STALE-2") == 1
    code_redeem(tenant=tenant, code="STALE-2", user_id="bob", actor=actor)
    assert _held("STALE-2") == 0


def test_a_live_hold_on_the_last_use_refuses_a_redeem_without_a_token(tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=1, max_redemptions_per_user=None)
    CodeFactory(book=book, code="LIVE-1")
    code_reserve(tenant=tenant, code="LIVE-1", user_id="ann", actor=actor)
    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="LIVE-1", user_id="bob", actor=actor)
    assert refused.value.code == "code_locked"
    assert not Redemption.objects.exists() and _held("LIVE-1") == 1


def test_a_used_up_code_is_refused_on_its_read_without_the_locked_path(tenant, actor):
    """No use left at all: code_exhausted from the unlocked read, before any write, so the redeemers still queued
    when a hot code runs out do not queue again on its row."""
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=1, max_redemptions_per_user=None)
    CodeFactory(book=book, code="GONE-1")
    code_redeem(tenant=tenant, code="GONE-1", user_id="ann", actor=actor)
    refused = {}

    def redeem():
        with pytest.raises(ApplicationError) as error:
            code_redeem(tenant=tenant, code="GONE-1", user_id="bob", actor=actor)
        refused["code"] = error.value.code

    assert statements(redeem) == ["BEGIN", "WITH", "ROLLBACK"]  # the read (with the user's row when limited), no write
    assert refused["code"] == "code_exhausted"


def test_a_used_up_code_is_still_answered_in_the_rules_order(tenant, actor):
    """A voided code's open rule answers before its counts, as the locked path answers."""
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=1, max_redemptions_per_user=None)
    CodeFactory(book=book, code="GONE-2", redeemed_count=1, state=Code.State.VOIDED)
    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="GONE-2", user_id="bob", actor=actor)
    assert refused.value.code == "code_voided"


def test_redeemers_of_one_code_without_a_token_queue_in_order_before_its_row(tenant, actor):
    """The counted redeem waits on the code's advisory queue (granted in order) before it reaches the row: while
    another transaction is at the head of the queue, the redeem waits WITHOUT holding the code's row."""
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=5, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="QUEUE-1")
    holder = connections.create_connection("default")
    waiter_done = threading.Event()
    outcome = {}

    def redeem_in_thread():
        try:
            outcome["redemption"] = code_redeem(tenant=tenant, code="QUEUE-1", user_id="bob", actor=actor)
        except BaseException as exc:  # reported below
            outcome["error"] = exc
        finally:
            connection.close()
            waiter_done.set()

    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [lifecycle_sql.HOT_CODE_QUEUE, code.pk])
            thread = threading.Thread(target=redeem_in_thread, daemon=True)
            thread.start()
            assert _waiting_on_a_lock(holder), ("the redeem never queued", outcome)
            cursor.execute("SELECT id FROM books_code WHERE id = %s FOR NO KEY UPDATE NOWAIT", [code.pk])
            assert not waiter_done.is_set()
            cursor.execute("COMMIT")
        thread.join(30)
    finally:
        holder.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["redemption"].code_id == code.pk


def test_the_hot_statements_are_prepared_once_they_repeat(tenant, actor):
    # Django turns psycopg's prepared statements off unless OPTIONS sets prepare_threshold (settings does): a
    # prepared statement is parsed and planned once per connection, which halved PostgreSQL's time per hot redeem
    # (2.3 -> 1.3 ms, README "Performance").
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=100)
    CodeFactory(book=book, code="PREP-1", max_uses=100)
    threshold = connection.connection.prepare_threshold
    assert threshold is not None, "psycopg prepares nothing: settings' prepare_threshold is off"
    for i in range(threshold + 1):
        code_redeem(tenant=tenant, code="PREP-1", user_id=f"u{i}", actor=actor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(f"pg_advisory_xact_lock({lifecycle_sql.HOT_CODE_QUEUE}" in text for text in prepared), prepared


def test_the_use_counts_take_their_indexes_in_a_plan_made_for_any_user(book):
    # A prepared statement runs a generic plan: one made without the parameters' values and kept while the
    # tables grow. Each count must still be an index look-up for the one user (or code) and never a scan of the
    # book's history: here with 600 users' redemptions and holds in the book, analyzed.
    code = CodeFactory(book=book, code="PLAN-1", max_uses=None)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO redemptions_redemption (tenant_id, book_id, code_id, user_id, redeemed_at, order_ref,
                   product_id, currency, actor_type, actor_id, idempotency_key, reversal_reason, reversed_by_type,
                   reversed_by_id)
               SELECT %s, %s, %s, 'user-' || n, %s, '', '', '', 'system', 'test', '', '', '', ''
               FROM generate_series(1, 600) n""",
            [book.tenant_id, book.pk, code.pk, now],
        )
        cursor.execute(
            """INSERT INTO books_reservation (tenant_id, book_id, code_id, user_id, token, status, created_at, expires_at)
               SELECT %s, %s, %s, 'user-' || n, 'token-' || n, 'active', %s, %s FROM generate_series(1, 600) n""",
            [book.tenant_id, book.pk, code.pk, now, now + timedelta(minutes=5)],
        )
        cursor.execute("ANALYZE redemptions_redemption, books_reservation")
    sql = "SELECT " + lifecycle_sql._use_counts_sql()
    for number, name in enumerate(["code_id", "book_id", "user_id", "now"], start=1):
        sql = sql.replace(f"%({name})s", f"${number}")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"PREPARE use_counts(bigint, bigint, text, timestamptz) AS {sql}")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"EXPLAIN EXECUTE use_counts({code.pk}, {book.pk}, 'user-1', now())")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE use_counts")
    assert "redemption_user_idx" in plan, plan
    assert "reservation_user_active_idx" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_random_assign_counts_the_users_codes_on_the_user_index(book, actor):
    # The claim's count of the user's codes names the tenant, so code_user_idx (tenant, user, book) answers it
    # with a look-up; by the book alone it read every code of the book (4.4 ms at 47,000 codes).
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO books_code (tenant_id, book_id, code, state, user_id, max_uses, redeemed_count, held,
                   shuffle, created_at)
               SELECT %s, %s, 'PLAN-' || n, CASE WHEN n %% 2 = 0 THEN 'assigned' ELSE 'free' END,
                   CASE WHEN n %% 2 = 0 THEN 'user-' || n END, 1, 0, 0, n, now()
               FROM generate_series(1, 2000) n""",
            [book.tenant_id, book.pk],
        )
        cursor.execute("ANALYZE books_code")
    captured = []

    def capture(execute, sql, params, many, context):
        if "SKIP LOCKED" in sql:
            captured.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        code_assign_random(tenant=book.tenant, book_id=book.pk, user_id="user-1", actor=actor)
        transaction.set_rollback(True)
    sql, params = captured[0]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = [row[0].strip() for row in cursor.fetchall()]
        transaction.set_rollback(True)
    at = next(i for i, line in enumerate(plan) if "code_user_idx" in line)
    assert plan[at + 1].startswith("Index Cond: ((tenant_id = "), plan
