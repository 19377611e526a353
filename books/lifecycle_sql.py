"""The hot statements of the code lifecycle, written as SQL (issue 12): assign at random, reserve, redeem, and the
event (with its webhook outbox rows) that every service records.

Why SQL here and nowhere else: on this project's machine the clients and PostgreSQL share two cores, so the
cycle's throughput follows the CPU and the round trips each call costs, and the ORM's cost dominated both.
`python -m bench.profile_cycle 300` (pyinstrument, one client, on the shared machine; README "Performance")
measured the assign -> lock -> redeem cycle through the ORM at 27 statements (BEGIN/COMMIT included), 11.2 ms of
client CPU and 43 ms wall; written here, 12 statements, 4.4 ms and 34 ms (the raw-SQL client: 1.9 ms of CPU).
Each statement below gives the profile's wall time per call before and after. Each service is still one
transaction of a few statements:

1. a fetch-and-lock statement that takes the service's row locks in the documented order (lock_objects: the
   user's BookUser row, then the code) and returns every row the rules read;
2. the rules of books/rules.py, in Python, on those locked rows;
3. one write statement: the change, its event and the event's webhook deliveries, as CTEs (so they commit
   together), returning the ids and, where a rule counts rows, the counts it needs.

Counts come back from the write statement, not the lock statement, on purpose. In READ COMMITTED every statement
reads one snapshot taken when it starts: a statement that waited for a lock still reads what was committed
before it waited, so a count in it could miss the reservation that the transaction it waited for had just
committed. The write statement starts after every lock is held, so its counts are exact. Its own inserts are
not visible to it (PostgreSQL's rule for data-modifying CTEs), so the counts are those before this call's use. A
rule that fails on them raises, and the transaction rolls back the writes. The locked row itself is returned as
its newest version (PostgreSQL re-reads a row it had to wait for), but the rows the lock statement reads without
locking (the book, the reservation a token names) are as of its snapshot: the write re-checks in its WHERE what
can have changed meanwhile (a reservation is consumed only while still active).

No rule lives here: the only conditions in these statements are the ones the database itself enforces anyway
(a use left, `redeemed_count < max_uses`, behind the CHECK code_redeemed_within_uses; a reservation still
active when it is consumed, as the ORM's conditional update did).
"""

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Model

from core.actors import Actor
from webhooks.services import outbox_body, outbox_insert_sql, outbox_params, outbox_wake_on_commit

from .models import BookUser, Code, CouponBook, Event, Reservation


class FromSql:
    """A value inside a JSON document (an event's data, a webhook's body) that the statement itself computes: the
    id of a row it inserts, a column of the row it claims."""

    __slots__ = ("expression",)

    def __init__(self, expression: str) -> None:
        self.expression = expression


# The values only the write statements know, by the names of their CTEs.
EVENT_ID = FromSql("event.id")
RESERVATION_ID = FromSql("reservation.id")
REDEMPTION_ID = FromSql("redemption.id")
CLAIMED_ID = FromSql("claimed.id")
CLAIMED_CODE = FromSql("claimed.code")
CLAIMED_REDEEMED_COUNT = FromSql("claimed.redeemed_count")
USED_STATE = FromSql("used.state")
USED_AT = FromSql("used.used_at")
USED_REDEEMED_COUNT = FromSql("used.redeemed_count")


@dataclass
class EventRow:
    """An event to record in the statement of its change, with its webhook (books.services.events builds it)."""

    tenant_id: int
    book_id: int
    code_id: int | FromSql | None
    kind: str
    actor: Actor
    user_id: str
    data: dict[str, Any]
    created_at: datetime | FromSql
    reservation_id: int | FromSql | None = None
    webhook_type: str | None = None  # None: no webhook for this kind
    webhook_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UseCounts:
    """What the use rules count (books.rules), read together in one snapshot."""

    code_held: int  # the code's active reservations
    user_redeemed: int  # the user's standing redemptions in the book
    user_held: int  # the user's active reservations in the book


# --- Building blocks ------------------------------------------------------------------------------------------


class _Encoder(DjangoJSONEncoder):
    """JSON as the services store it; a FromSql becomes a marker that _Params.json turns into SQL."""

    def __init__(self, *args, marker: str, sink: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marker, self.sink = marker, sink

    def default(self, o):
        if isinstance(o, FromSql):
            self.sink.append(o.expression)
            return f"{self.marker}{len(self.sink) - 1}"
        return super().default(o)


class _Params(dict):
    """A statement's named parameters."""

    def add(self, value: Any) -> str:
        name = f"p{len(self)}"
        self[name] = value
        return f"%({name})s"

    def slot(self, name: str, value: Any) -> str | None:
        """params[name] = value, or, for a FromSql, its expression (returned; None for a parameter)."""
        if isinstance(value, FromSql):
            return value.expression
        self[name] = value
        return None

    def json(self, name: str, value: Any) -> tuple[str, ...]:
        """`value` as compact JSON text (as DjangoJSONEncoder writes it) in params[name]; returns the expressions of
        the FromSql values inside it, in order. Each stands in the text as a quoted marker, params[f"{name}_{i}"],
        that _json_sql replaces with the statement's to_json of it. The markers are random per call, so no text of a
        caller's can pass for one, and the SQL depends on the expressions only: it is built once per shape."""
        marker, expressions = f"~{secrets.token_hex(6)}~", []
        self[name] = json.dumps(value, cls=_Encoder, separators=(",", ":"), marker=marker, sink=expressions)
        for index in range(len(expressions)):
            self[f"{name}_{index}"] = f'"{marker}{index}"'
        return tuple(expressions)


def _slot_sql(name: str, expression: str | None) -> str:
    return f"%({name})s" if expression is None else expression


def _json_sql(name: str, expressions: tuple[str, ...]) -> str:
    """The SQL text of a JSON value that _Params.json put in params[name], its FromSql values filled in."""
    sql = f"%({name})s::text"
    for index, expression in enumerate(expressions):
        sql = f"replace({sql}, %({name}_{index})s::text, to_json({expression})::text)"
    return sql


def _columns(model: type[Model], alias: str) -> str:
    return ", ".join(f"{alias}.{f.column}" for f in model._meta.concrete_fields)


def _instance(model: type[Model], values: tuple) -> Model:
    """A model instance from a row of its concrete columns, in _columns' order, as the ORM builds one (a JSON
    column arrives as text from the driver: its field's from_db_value decodes it, as the ORM's converters do)."""
    values = list(values)
    for index, convert in _converters(model):
        values[index] = convert(values[index], None, connection)
    return model.from_db("default", [f.attname for f in model._meta.concrete_fields], values)


@cache
def _converters(model: type[Model]) -> list:
    fields = model._meta.concrete_fields
    return [(i, f.from_db_value) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]


def _width(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


def _code_with_book(row: tuple) -> Code:
    code = _instance(Code, row[: _width(Code)])
    code.book = _instance(CouponBook, row[_width(Code) : _width(Code) + _width(CouponBook)])
    return code


@cache
def _use_counts_sql() -> str:
    """The counts behind "a use left" and the per-user redemption limit, as three scalar subqueries over
    %(code_id)s, %(book_id)s, %(user_id)s, %(now)s. The partial indexes reservation_code_active_idx,
    redemption_user_idx and reservation_user_active_idx serve them."""
    from redemptions.models import Redemption

    reservation, redemption = Reservation._meta.db_table, Redemption._meta.db_table
    return f"""
        (SELECT count(*) FROM {reservation}
         WHERE code_id = %(code_id)s AND status = 'active' AND expires_at > %(now)s),
        (SELECT count(*) FROM {redemption} WHERE book_id = %(book_id)s AND user_id = %(user_id)s AND reversed_at IS NULL),
        (SELECT count(*) FROM {reservation}
         WHERE book_id = %(book_id)s AND user_id = %(user_id)s AND status = 'active' AND expires_at > %(now)s)"""


def use_counts(*, code: Code, user_id: str, now: datetime) -> UseCounts:
    """The use counts on their own (validate's dry run; the services get them from their write statement)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_use_counts_sql()}", {"code_id": code.pk, "book_id": code.book_id, "user_id": user_id, "now": now}
        )
        return UseCounts(*cursor.fetchone())


def _user_codes_sql() -> str:
    """What max_codes_per_user counts: the user's codes in the book, voided ones aside, over %(tenant_id)s,
    %(user_id)s, %(book_id)s. It names the tenant so that code_user_idx (tenant, user, book) serves it: by the book
    alone it read every code of the book (4.4 ms at 47,000 codes, where the random claim takes 0.07 ms; README
    "Performance")."""
    return f"""(SELECT count(*) FROM {Code._meta.db_table}
         WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s AND book_id = %(book_id)s AND state <> 'voided')"""


def user_codes_held(*, book: CouponBook, user_id: str) -> int:
    """The user's codes in the book on their own (a named assign; the random one counts in its claim)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_user_codes_sql()}", {"tenant_id": book.tenant_id, "user_id": user_id, "book_id": book.pk})
        return cursor.fetchone()[0]


def _has_outbox(event: EventRow) -> bool:
    return event.webhook_type is not None and event.code_id is not None


def _event_ctes(params: _Params, event: EventRow, *, source: str | None = None) -> str:
    """The `event` CTE (one history row) and, when the kind has a webhook, the `outbox` CTE (a delivery per
    subscribed endpoint, as webhooks.services.outbox_add writes them). `source` names the CTE of the change
    (one row) that the event's values are selected from; None when they are all parameters.

    Only the parameters are made per call; the SQL is built once per shape (_event_ctes_sql). Built per call, it
    and the counted redeem's statement around it cost 13% of a hot redeem's client CPU (cProfile by CPU time of
    one client; README "Performance")."""
    params.update(
        event_tenant_id=event.tenant_id,
        event_book_id=event.book_id,
        event_kind=event.kind,
        event_user_id=event.user_id or "",
        event_actor_type=event.actor.kind,
        event_actor_id=event.actor.id,
    )
    body = None
    if _has_outbox(event):
        params.update(outbox_params(tenant_id=event.tenant_id, event_type=event.webhook_type, ordering_key=""))
        body = params.json(
            "event_body", outbox_body(event_type=event.webhook_type, data=event.webhook_data, occurred_at=event.created_at)
        )
    return _event_ctes_sql(
        params.slot("event_code_id", event.code_id),
        params.slot("event_reservation_id", event.reservation_id),
        params.slot("event_created_at", event.created_at),
        params.json("event_data", event.data),
        body,
        source,
    )


@cache
def _event_ctes_sql(
    code_id: str | None,
    reservation_id: str | None,
    created_at: str | None,
    data: tuple[str, ...],
    body: tuple[str, ...] | None,
    source: str | None,
) -> str:
    """_event_ctes' SQL for one shape: the expressions of the event's FromSql values (None: a parameter) and of
    those inside its data and its webhook's body (None: no webhook)."""
    values = [
        "%(event_tenant_id)s",
        "%(event_book_id)s",
        _slot_sql("event_code_id", code_id),
        _slot_sql("event_reservation_id", reservation_id),
        "%(event_kind)s",
        "%(event_user_id)s",
        "%(event_actor_type)s",
        "%(event_actor_id)s",
        f"{_json_sql('event_data', data)}::jsonb",
        _slot_sql("event_created_at", created_at),
    ]
    sql = f"""
        event AS (
            INSERT INTO {Event._meta.db_table}
                (tenant_id, book_id, code_id, reservation_id, kind, user_id, actor_type, actor_id, data, created_at)
            SELECT {", ".join(values)}{f" FROM {source}" if source else ""}
            RETURNING id, code_id)"""
    if body is None:
        return sql
    outbox = outbox_insert_sql(
        body=_json_sql("event_body", body),
        ordering_key="'code:' || event.code_id",
        source=f", event{f', {source}' if source else ''}",
    )
    # One queue per code: a receiver gets a code's events in the order they happened.
    return f"{sql},\n        outbox AS ({outbox})"


def _deliveries(event: EventRow) -> str:
    """The select-list item that returns the outbox's new delivery ids (an empty array without a webhook)."""
    return "(SELECT array_agg(id) FROM outbox)" if _has_outbox(event) else "NULL::bigint[]"


def _run(sql: str, params: dict) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


# --- The statements -------------------------------------------------------------------------------------------


def event_insert(event: EventRow) -> int:
    """Record one event and its webhook deliveries: ONE statement (the ORM's create and outbox_add were two, 4.8
    to 5.1 ms a call in the profile, of which outbox_add 1.9 to 2.0 ms, paid even by a tenant with no endpoint)."""
    params = _Params()
    row = _run(f"WITH {_event_ctes(params, event)} SELECT event.id, {_deliveries(event)} FROM event", params)
    outbox_wake_on_commit(row[1] or [])
    return row[0]


@cache
def _book_user_lock_sql(limit: str) -> str:
    return f"""
        WITH book AS (
            SELECT {_columns(CouponBook, "b")} FROM {CouponBook._meta.db_table} b
            WHERE b.id = %(book_id)s AND b.tenant_id = %(tenant_id)s),
        user_lock AS (
            INSERT INTO {BookUser._meta.db_table} (book_id, user_id)
            SELECT id, %(user_id)s FROM book WHERE {limit} IS NOT NULL
            ON CONFLICT (book_id, user_id) DO UPDATE SET user_id = EXCLUDED.user_id
            RETURNING 1)
        SELECT * FROM book"""


def book_with_user_lock(*, tenant_id: int, book_id: int, user_id: str) -> CouponBook | None:
    """The tenant's book, and (only when the book limits codes per user) the user's BookUser row locked, in ONE
    statement (was two, book_get and the upsert: 7.5 ms a call in the profile; now 2.0 ms).

    The book row is read, not locked, so the order of the two in the statement does not matter."""
    row = _run(_book_user_lock_sql("max_codes_per_user"), {"book_id": book_id, "tenant_id": tenant_id, "user_id": user_id})
    return None if row is None else _instance(CouponBook, row)


@cache
def _code_lock_sql(limit: str | None, with_reservation: bool, lock: bool) -> str:
    codes, books, reservations = Code._meta.db_table, CouponBook._meta.db_table, Reservation._meta.db_table
    user_lock, gate = "", ""
    if limit is not None:
        # The user's row first, the code second (lock_objects' order): the upsert runs inside an uncorrelated
        # subquery of the WHERE clause, which PostgreSQL evaluates once, before it scans (and locks) any code
        # row (a one-time filter); test_lifecycle_sql shows the code stays unlocked while the user's row is busy.
        user_lock = f"""
            WITH user_lock AS (
                INSERT INTO {BookUser._meta.db_table} (book_id, user_id)
                SELECT c.book_id, %(user_id)s FROM {codes} c JOIN {books} b ON b.id = c.book_id
                WHERE c.tenant_id = %(tenant_id)s AND c.code = %(code)s AND b.{limit} IS NOT NULL
                ON CONFLICT (book_id, user_id) DO UPDATE SET user_id = EXCLUDED.user_id
                RETURNING 1)"""
        gate = "AND (SELECT count(*) FROM user_lock) >= 0"
    reservation_columns, reservation_join = "", ""
    if with_reservation:
        # The reservation the token names is read, not locked: consuming it is a conditional UPDATE.
        reservation_columns = f", {_columns(Reservation, 'r')}"
        reservation_join = f"""LEFT JOIN {reservations} r
                ON r.code_id = c.id AND r.token = %(token)s AND r.user_id = %(user_id)s"""
    return f"""{user_lock}
        SELECT {_columns(Code, "c")}, {_columns(CouponBook, "b")}{reservation_columns}
        FROM {codes} c JOIN {books} b ON b.id = c.book_id {reservation_join}
        WHERE c.tenant_id = %(tenant_id)s AND c.code = %(code)s {gate}
        {"FOR NO KEY UPDATE OF c" if lock else ""}"""


def code_lock(
    *, tenant_id: int, code: str, user_id: str, user_limit: str | None = None, token: str | None = None, lock: bool = True
) -> tuple[Code, Reservation | None] | None:
    """The tenant's code, row-locked, with its book; None when there is no such code. ONE statement (was three
    for a lock: the code and book, the user's upsert, the code and book again locked, 17.4 ms a call in the
    profile; two for a redeem with a token, the locked code and the locked reservation, 14.5 ms; now 2.7 to
    3.4 ms).

    user_limit names the book's per-user limit that this call may raise ("max_codes_per_user" or
    "max_redemptions_per_user"): when the book sets it, the user's BookUser row is locked first. token: the
    reservation of this user on this code with that token is read too (None when there is none). lock=False:
    the code is read, not locked (a redeem without a token takes its lock in its write statement,
    redemption_insert_counted).
    """
    params = {"tenant_id": tenant_id, "code": code, "user_id": user_id, "token": token}
    row = _run(_code_lock_sql(user_limit, token is not None, lock), params)
    if row is None:
        return None
    found = _code_with_book(row)
    reservation = None
    if token is not None and row[_width(Code) + _width(CouponBook)] is not None:
        reservation = _instance(Reservation, row[_width(Code) + _width(CouponBook) :])
    return found, reservation


def reservation_insert(
    *, code: Code, user_id: str, token: str, expires_at: datetime, now: datetime, event: EventRow
) -> tuple[Reservation, UseCounts]:
    """Write a reservation (counted in its code's `held`), its event and webhook deliveries in ONE statement,
    returning the use counts as they were before it (was four: the counts, the reservation, the event, the outbox; 10.4 ms a call in the profile,
    now 4.5 ms)."""
    params = _Params(code_id=code.pk, book_id=code.book_id, user_id=user_id, now=now)
    fields = [code.tenant_id, code.book_id, code.pk, user_id, token, Reservation.Status.ACTIVE, now, expires_at]
    sql = f"""
        WITH reservation AS (
            INSERT INTO {Reservation._meta.db_table}
                (tenant_id, book_id, code_id, user_id, token, status, created_at, expires_at, ended_at)
            VALUES ({", ".join(params.add(value) for value in fields)}, NULL)
            RETURNING id),
        counted AS (UPDATE {Code._meta.db_table} SET held = held + 1 WHERE id = %(code_id)s RETURNING 1),
        {_event_ctes(params, event, source="reservation")}
        SELECT reservation.id, {_deliveries(event)}, {_use_counts_sql()} FROM reservation"""
    row = _run(sql, params)
    outbox_wake_on_commit(row[1] or [])
    reservation = Reservation(
        id=row[0], tenant_id=code.tenant_id, book=code.book, code=code, user_id=user_id, token=token,
        status=Reservation.Status.ACTIVE, created_at=now, expires_at=expires_at,
    )  # fmt: skip
    return reservation, UseCounts(*row[2:])


@dataclass(frozen=True)
class RedeemWrite:
    redemption_id: int | None  # None: no use was left (the conditional update matched no row)
    reservation_consumed: bool
    counts: UseCounts | None  # the use counts before this call (without a reservation only)


def redemption_insert(
    *, code: Code, state: str, reservation: Reservation | None, redemption: dict[str, Any], event: EventRow
) -> RedeemWrite:
    """Take one use of the code and write the redemption, its event and webhook deliveries in ONE statement (was
    five with a token: consume, the code's count, the redemption, the event and the outbox; 17.7 ms a call in the
    profile, now 5.1 ms).

    The use is taken by a conditional update, `redeemed_count < max_uses` (the CHECK behind it would refuse the
    row anyway), and the inserts select from it, so no row is written when no use is left. `state` is the code's
    state after this use (decided by the caller from the locked row). With a reservation, it is consumed only
    while still active, and the use only once it is: the caller read the reservation in the snapshot of its lock
    statement, so a redeem of the same token that committed while this one waited for the code still looked
    active there (and a second redemption would break the reservation's unique key); the expiry task may also
    have just marked it. Without one, the use counts come back too.
    """
    from redemptions.models import Redemption

    now = redemption["redeemed_at"]
    params = _Params(code_id=code.pk, book_id=code.book_id, user_id=redemption["user_id"], now=now, state=state)
    params["consumes"] = 0 if reservation is None else 1  # the hold it consumes leaves the code's `held`
    consumed = "SELECT 0"
    if reservation is not None:
        params["reservation_id"] = reservation.pk
        consumed = f"""UPDATE {Reservation._meta.db_table} SET status = 'consumed', ended_at = %(now)s
            WHERE id = %(reservation_id)s AND status = 'active' RETURNING 1"""
    columns = ["tenant_id", "book_id", "code_id", "reservation_id", *redemption]
    values = [
        params.add(v) for v in [code.tenant_id, code.book_id, code.pk, reservation and reservation.pk, *redemption.values()]
    ]
    counts = "NULL, NULL, NULL" if reservation is not None else _use_counts_sql()
    sql = f"""
        WITH consumed AS ({consumed}),
        used AS (
            UPDATE {Code._meta.db_table}
            SET redeemed_count = redeemed_count + 1, state = %(state)s, held = held - %(consumes)s
            WHERE id = %(code_id)s AND (max_uses IS NULL OR redeemed_count < max_uses) AND EXISTS (SELECT FROM consumed)
            RETURNING id),
        redemption AS (
            INSERT INTO {Redemption._meta.db_table} ({", ".join(columns)}, reversed_at, reversal_reason,
                                                    reversed_by_type, reversed_by_id)
            SELECT {", ".join(values)}, NULL, '', '', '' FROM used
            RETURNING id),
        {_event_ctes(params, event, source="redemption")}
        SELECT (SELECT id FROM redemption), (SELECT count(*) FROM consumed), {_deliveries(event)}, {counts}"""
    row = _run(sql, params)
    outbox_wake_on_commit(row[2] or [])
    return RedeemWrite(
        redemption_id=row[0],
        reservation_consumed=reservation is None or row[1] == 1,
        counts=None if reservation is not None else UseCounts(*row[3:]),
    )


def held_recount(*, code: Code) -> None:
    """Set the locked code's `held` to its active reservations: a hold past its time that the expiry task marked
    was never taken off it (that task does not lock codes), so a redeem that the counter refused recounts."""
    reservations = Reservation._meta.db_table
    _run(
        f"""UPDATE {Code._meta.db_table} SET held = (SELECT count(*) FROM {reservations}
            WHERE code_id = %(code_id)s AND status = 'active') WHERE id = %(code_id)s RETURNING held""",
        {"code_id": code.pk},
    )


@dataclass(frozen=True)
class CountedWrite:
    code: Code | None  # the code's newest row as this use left it (locked now); None: the counter refused the use
    redemption_id: int | None
    counts: UseCounts | None  # code_held: the code's `held`; the user's counts as before this use
    used_at: datetime | None  # when the use was taken (the redemption's and its event's time)


def redemption_insert_counted(*, code: Code, now: datetime, redemption: dict[str, Any], event: EventRow) -> CountedWrite:
    """A redeem without a token: take one use of the code (read, not locked) on its own counters and write the
    redemption, its event and webhook deliveries, in ONE statement. This is what lets 64 redeemers share one
    code: its row lock is taken by this statement's UPDATE and held only until the COMMIT that follows, where
    the locked path (code_lock, then redemption_insert) holds it across a client round trip more. (README
    "Performance" has the bench runs of both; on the shared machine they did not settle which is faster.)

    Redeemers of one code queue first come, first served on a transaction-level advisory lock (HOT_CODE_QUEUE,
    the code's id), taken by the `queue` CTE before the UPDATE reaches the row (an uncorrelated subquery of its
    WHERE: evaluated once, before the scan), and held to the COMMIT like the row lock. PostgreSQL does not hand
    a contended row lock over in order: a waiter woken by a commit chases the row's new version while newcomers
    can take it first, so some redeemers waited many turns (p99 1.6-1.9 s at 64 redeemers, the same run's p50
    0.2 s); its lock manager grants an advisory lock to the waiters in their order (p99 0.52-0.56 s, p50 0.31 s;
    README "Performance"). It only orders the queue: the row lock still guards the use, and every other path
    (a token, reserve, the locked path) takes the row without it, so no lock order changes. Two codes whose ids
    fold to the same int4 share a queue, which only orders them.

    The UPDATE takes the use only while `redeemed_count + held < max_uses` on the row's newest version (waiting
    for the row re-evaluates it), so with `held` counting at least the active reservations, a use is left
    beyond every hold. When it matches no row (no use left by the counters, or a hold past its time still
    counted), nothing is written and the caller takes the locked path, which counts exactly. The new state is
    decided here from the row itself (its last use makes it redeemed, as codes._use_taken does on a locked
    row): the caller's copy may be stale. The user's counts come back as the other write statements return
    them, and the code's newest row for the caller's rules.

    The redemption and its event are dated when the use is taken, by the database's clock once the row is
    locked (USED_AT, for redeemed_at and the event's created_at): a time taken before the statement could
    order a code's history differently from the order its uses were taken in (and its webhooks are sent in).
    `now` (the caller's clock) dates the counts of active holds.
    """
    params = _Params(code_id=code.pk, book_id=code.book_id, user_id=redemption["user_id"], now=now)
    params.update(redemption_tenant_id=code.tenant_id, redemption_book_id=code.book_id, redemption_code_id=code.pk)
    values = tuple((column, params.slot(f"redemption_{column}", value)) for column, value in redemption.items())
    sql = _redemption_insert_counted_sql(values, _event_ctes(params, event, source="redemption, used"), _deliveries(event))
    row = _run(sql, params)
    outbox_wake_on_commit(row[1] or [])
    if row[4] is None:
        return CountedWrite(code=None, redemption_id=None, counts=None, used_at=None)
    used = _instance(Code, row[4:-1])
    used.book = code.book
    return CountedWrite(code=used, redemption_id=row[0], counts=UseCounts(used.held, row[2], row[3]), used_at=row[-1])


# The advisory lock class of the counted redeem's queue per code (redemption_insert_counted; the second key: the
# code's id, folded to int4). The project takes no other advisory lock.
HOT_CODE_QUEUE = 12


@cache
def _redemption_insert_counted_sql(values: tuple[tuple[str, str | None], ...], event_ctes: str, deliveries: str) -> str:
    """redemption_insert_counted's statement for one shape: the redemption's columns, each with its FromSql
    expression (None: a parameter), and the event's CTEs."""
    from redemptions.models import Redemption

    columns = ", ".join(column for column, _ in values)
    selected = ", ".join(_slot_sql(f"redemption_{column}", expression) for column, expression in values)
    redemptions, reservations = Redemption._meta.db_table, Reservation._meta.db_table
    return f"""
        WITH queue AS (SELECT pg_advisory_xact_lock({HOT_CODE_QUEUE}, (%(code_id)s %% 2147483647)::int)),
        used AS (
            UPDATE {Code._meta.db_table} SET redeemed_count = redeemed_count + 1,
                state = CASE WHEN max_uses IS NOT NULL AND redeemed_count + 1 >= max_uses AND state <> 'voided'
                             THEN 'redeemed' ELSE state END
            WHERE id = %(code_id)s AND (SELECT count(*) FROM queue) >= 0
                AND (max_uses IS NULL OR redeemed_count + held < max_uses)
            RETURNING {_columns(Code, Code._meta.db_table)}, clock_timestamp() AS used_at),
        redemption AS (
            INSERT INTO {redemptions} (tenant_id, book_id, code_id, reservation_id, {columns}, reversed_at,
                                       reversal_reason, reversed_by_type, reversed_by_id)
            SELECT %(redemption_tenant_id)s, %(redemption_book_id)s, %(redemption_code_id)s, NULL, {selected},
                   NULL, '', '', '' FROM used
            RETURNING id),
        {event_ctes}
        SELECT (SELECT id FROM redemption), {deliveries},
            (SELECT count(*) FROM {redemptions}
             WHERE book_id = %(book_id)s AND user_id = %(user_id)s AND reversed_at IS NULL),
            (SELECT count(*) FROM {reservations}
             WHERE book_id = %(book_id)s AND user_id = %(user_id)s AND status = 'active' AND expires_at > %(now)s),
            used.*
        FROM (SELECT 1) AS one LEFT JOIN used ON true"""


@dataclass(frozen=True)
class Claim:
    code: Code | None  # None: no free code from this point of the shuffle order
    user_codes: int  # the user's codes in the book before this claim (voided ones aside)


def free_code_claim(*, book: CouponBook, user_id: str, start: int, wrapped: bool, now: datetime, event: EventRow) -> Claim:
    """Claim a free code of the book for the user, from `start` in the shuffle order (or before it, `wrapped`),
    and write its event and webhook deliveries: ONE statement (was five: the count of the user's codes, the
    claim, the update, the event and the outbox; 19.2 ms a call in the profile, now 4.7 ms). The user's code
    count comes back.

    SKIP LOCKED hands each concurrent claimer a different free code (lock_objects.free_codes_claim_qs); the user's
    count is _user_codes_sql's.
    """
    codes = Code._meta.db_table
    params = _Params(
        tenant_id=book.tenant_id, book_id=book.pk, user_id=user_id, now=now, start=start, assigned=Code.State.ASSIGNED
    )
    sql = f"""
        WITH free AS (
            SELECT id FROM {codes}
            WHERE book_id = %(book_id)s AND state = 'free' AND shuffle {"<" if wrapped else ">="} %(start)s
            ORDER BY shuffle LIMIT 1
            FOR NO KEY UPDATE SKIP LOCKED),
        claimed AS (
            UPDATE {codes} c SET state = %(assigned)s, user_id = %(user_id)s, assigned_at = %(now)s
            FROM free WHERE c.id = free.id AND c.state = 'free'
            RETURNING {_columns(Code, "c")}),
        {_event_ctes(params, event, source="claimed")}
        SELECT {_user_codes_sql()}, {_deliveries(event)}, claimed.*
        FROM (SELECT 1) AS one LEFT JOIN claimed ON true"""
    row = _run(sql, params)
    outbox_wake_on_commit(row[1] or [])
    code = None
    if row[2] is not None:
        code = _instance(Code, row[2:])
        code.book = book
    return Claim(code=code, user_codes=row[0])
