"""Distribution: one code of a book to each end user of a list (SPEC "Code generation and upload", Distribution).

A newsletter's 50,000 subscribers get their codes in one request (or one job above
COUPONS["SYNC_DISTRIBUTION_LIMIT"] users), not in 50,000 assign calls, and the tenant's mailing tool gets a CSV
`user_id,code,status` back. The rules, each decided once here:

- **One code per user, ever, from a distribution.** A user who already holds a (not voided) code of the book keeps
  it and is reported `already_assigned` with that code, never given a second, whatever the book's
  max_codes_per_user allows: so running the same list twice assigns nothing new (idempotent per user).
- **Bad ids are reported per row, not fatal**: an empty id, one longer than 255 characters or one with a
  non-printable character is reported `invalid_user_id` (code empty) and the others are served; a mailing list
  with one damaged row should not block every other subscriber. A list with no valid id at all is refused
  (400 empty_upload). Repeated ids collapse to one (the first occurrence's row).
- **All or nothing on codes**: when the book has fewer free codes than the users who need one, nothing is
  assigned (409 book_exhausted with `count` needed and `available`); a half-served list would leave the
  marketer to work out who got what.
- The book must be open for assignment (rules.book_assignable_check, as for a single assignment).

Concurrency: every user's BookUser row is locked first (in sorted order, so two distributions of overlapping
lists never wait on each other in a circle, and before any code: the lock order of books/lock_objects.py), then
the holders are read under those locks, then free codes are claimed with FOR UPDATE SKIP LOCKED from a random
point of the shuffle order (as code_assign_random does) and assigned with one UPDATE per batch. One
`distributed` event records the run (code null, counts in data) rather than one `assigned` event per code: a
million-user run is not a million history rows. Webhooks (code.assigned) are sent per recorded code event, so a
distribution sends none; the CSV is the integrator's record of it (README "Distribution").
"""

import csv
import io
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError
from core.models import Job

from .. import lock_objects, rules
from ..inputs import MAX_USER_ID_LENGTH
from ..models import Code, CouponBook, Event
from ..parsers import upload_inspect, user_ids_from_file
from .book_jobs import book_job_create, file_job_create
from .events import event_record

Progress = Callable[[int], None]
# Users per statement (lock, holder look-up, claim, update): large enough to amortise round trips, small enough
# to report progress often and keep each statement's array modest.
BATCH = 10000
CSV_HEADER = ("user_id", "code", "status")


class Status:
    ASSIGNED = "assigned"
    ALREADY_ASSIGNED = "already_assigned"
    INVALID_USER_ID = "invalid_user_id"


@dataclass(frozen=True)
class DistributionList:
    """A checked list: the valid ids (unique, in first-seen order) and each row's place for the result."""

    user_ids: list[str]
    invalid: list[tuple[int, str]]  # (position in the result, the value as shown)
    order: list[tuple[str, str]]  # (kind, value) per result row: ("user", id) or ("invalid", shown value)
    duplicates: int


@dataclass
class DistributionResult:
    assigned: int = 0
    already_assigned: int = 0
    invalid: int = 0
    duplicates: int = 0
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (user_id, code, status), in the list's order

    @property
    def summary(self) -> dict:
        return {
            "total": len(self.rows),
            "assigned": self.assigned,
            "already_assigned": self.already_assigned,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
        }


def _max_users() -> int:
    return settings.COUPONS["MAX_DISTRIBUTION_USERS"]


def _shown(value: str) -> str:
    """An invalid value as the result shows it: cut short, control characters replaced."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in value[:MAX_USER_ID_LENGTH])


def _user_id_valid(value: str) -> str | None:
    """The id, stripped, or None when it is not one: empty, too long, or with a non-printable character.

    Stricter than a single call's clean_user_id (which refuses only NUL): ids read from a file carry stray
    control characters more often than hand-made calls, and they would break the result CSV's rows.
    """
    value = value.strip()
    if not value or len(value) > MAX_USER_ID_LENGTH or not value.isprintable():
        return None
    return value


def distribution_prepare(*, user_ids: Iterable[str]) -> DistributionList:
    """Check a list of end-user ids; refuse it whole when it is too long or holds no valid id."""
    limit = _max_users()
    seen: set[str] = set()
    valid: list[str] = []
    invalid: list[tuple[int, str]] = []
    order: list[tuple[str, str]] = []
    duplicates = 0
    for position, raw in enumerate(user_ids, start=1):
        if position > limit:
            raise ApplicationError(
                "request_too_large", f"A distribution holds at most {limit:,} user ids.", {"field": "user_ids", "limit": limit}
            )
        value = _user_id_valid(raw)
        if value is None:
            invalid.append((len(order), _shown(raw)))
            order.append(("invalid", _shown(raw)))
        elif value in seen:
            duplicates += 1
        else:
            seen.add(value)
            valid.append(value)
            order.append(("user", value))
    if not valid:
        raise ApplicationError("empty_upload", "The list holds no valid user id.", {"field": "user_ids", "count": len(invalid)})
    return DistributionList(user_ids=valid, invalid=invalid, order=order, duplicates=duplicates)


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), BATCH):
        yield values[start : start + BATCH]


HOLDERS_SQL = f"""
    SELECT DISTINCT ON (user_id) user_id, code FROM {Code._meta.db_table}
    WHERE tenant_id = %s AND book_id = %s AND user_id = ANY(%s::text[]) AND state <> %s
    ORDER BY user_id, assigned_at, id
"""


def _holders(*, book: CouponBook, user_ids: list[str]) -> dict[str, str]:
    """user id -> the code they hold in the book (not voided; their first, when they hold several).

    SQL over one array a batch (served by the index code_user_idx): the ORM's `user_id__in` compiled a parameter
    per user, which cost more than the query."""
    held: dict[str, str] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(user_ids):
            cursor.execute(HOLDERS_SQL, [book.tenant_id, book.pk, chunk, Code.State.VOIDED])
            held.update(cursor.fetchall())
    return held


def _free_codes_claim(*, book: CouponBook, count: int) -> list[int]:
    """Up to `count` free codes of the book, locked for this transaction, from a random point of the shuffle
    order and wrapping around (as code_assign_random): concurrent claimers spread instead of meeting."""
    start = secrets.randbits(63)
    claim = lock_objects.free_codes_claim_qs(book=book).values_list("pk", flat=True)
    ids = list(claim.filter(shuffle__gte=start)[:count])
    if len(ids) < count:
        ids += list(claim.filter(shuffle__lt=start)[: count - len(ids)])
    return ids


ASSIGN_SQL = f"""
    UPDATE {Code._meta.db_table} AS c SET state = %s, user_id = v.user_id, assigned_at = %s
    FROM unnest(%s::bigint[], %s::text[]) AS v(id, user_id)
    WHERE c.id = v.id AND c.state = %s
    RETURNING v.user_id, c.code
"""


def _assign(*, code_ids: list[int], user_ids: list[str], now) -> dict[str, str]:
    """One UPDATE for a batch: the claimed (locked, free) codes to their users. user id -> code."""
    with connection.cursor() as cursor:
        cursor.execute(ASSIGN_SQL, [Code.State.ASSIGNED, now, code_ids, user_ids, Code.State.FREE])
        assigned = dict(cursor.fetchall())
    if len(assigned) != len(user_ids):  # the codes were locked by us and free: this cannot happen
        raise RuntimeError(f"distribution assigned {len(assigned)} codes for {len(user_ids)} users")
    return assigned


def codes_distribute(
    *, book: CouponBook, user_ids: DistributionList | Iterable[str], actor: Actor, progress: Progress | None = None
) -> DistributionResult:
    """Give one free code of the book to each user of the list who holds none; all or nothing (module docstring)."""
    checked = user_ids if isinstance(user_ids, DistributionList) else distribution_prepare(user_ids=user_ids)
    with transaction.atomic():
        book = CouponBook.objects.get(pk=book.pk)  # the current row: the rules read it after the user locks too
        now = timezone.now()
        rules.book_assignable_check(book=book, now=now)
        # 1. Every user's row, in sorted order, before any code (lock order: BookUser -> Code).
        lock_objects.book_users_lock(book=book, user_ids=sorted(checked.user_ids), batch_size=BATCH)
        # 2. Who holds a code already, read under those locks: they keep it.
        held = _holders(book=book, user_ids=checked.user_ids)
        needing = [user_id for user_id in checked.user_ids if user_id not in held]
        # 3. Free codes for the others, all of them or none.
        given: dict[str, str] = {}
        done = len(checked.user_ids) - len(needing)
        if progress:
            progress(done)
        for chunk in _chunks(needing):
            code_ids = _free_codes_claim(book=book, count=len(chunk))
            if len(code_ids) < len(chunk):
                available = len(given) + len(code_ids)
                raise ApplicationError(
                    "book_exhausted",
                    f"The book has {available:,} free code(s) for {len(needing):,} user(s) who need one; nothing was assigned.",
                    {"book": book.pk, "count": len(needing), "available": available},
                )
            given.update(_assign(code_ids=code_ids, user_ids=chunk, now=now))
            done += len(chunk)
            if progress:
                progress(done)
        result = DistributionResult(
            assigned=len(given), already_assigned=len(held), invalid=len(checked.invalid), duplicates=checked.duplicates
        )
        for kind, value in checked.order:
            if kind == "invalid":
                result.rows.append((value, "", Status.INVALID_USER_ID))
            elif value in given:
                result.rows.append((value, given[value], Status.ASSIGNED))
            else:
                result.rows.append((value, held[value], Status.ALREADY_ASSIGNED))
        event_record(book=book, kind=Event.Kind.DISTRIBUTED, actor=actor, user_id=None, data=result.summary)
    return result


def result_csv_write(result: DistributionResult, out) -> None:
    """The result as CSV `user_id,code,status` (UTF-8) into a text stream."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(result.rows)


def result_csv(result: DistributionResult) -> str:
    out = io.StringIO()
    result_csv_write(result, out)
    return out.getvalue()


# --- Requests that may become jobs --------------------------------------------------------------------------


def _job_refused_check(book: CouponBook) -> None:
    """Before a job is queued: the book's current row must be open for assignment (the job checks again)."""
    rules.book_assignable_check(book=CouponBook.objects.get(pk=book.pk), now=timezone.now())


def distribution_request(*, book: CouponBook, user_ids: list[str], actor: Actor) -> DistributionResult | Job:
    """Distribute at once, or (above the synchronous limit) store the checked list with a job and queue it."""
    checked = distribution_prepare(user_ids=user_ids)
    if len(checked.user_ids) + len(checked.invalid) <= settings.COUPONS["SYNC_DISTRIBUTION_LIMIT"]:
        return codes_distribute(book=book, user_ids=checked, actor=actor)
    _job_refused_check(book)
    # The list as sent, in JSON: the job checks exactly what the request checked (and reports the same invalid rows).
    listed = ContentFile(json.dumps(user_ids).encode())
    total = len(checked.user_ids)
    return book_job_create(book=book, kind=Job.Kind.DISTRIBUTE, actor=actor, total=total, input_file=listed, input_suffix="json")


def distribution_file_request(*, book: CouponBook, file: BinaryIO, filename: str, actor: Actor) -> DistributionResult | Job:
    """An uploaded CSV/XLSX of user ids: its bounds checked at once; a small file read here, a large one stored with
    a job that reads it (its parse would not fit in a request's time)."""
    shape = upload_inspect(file, filename)
    if shape.inflated <= settings.COUPONS["SYNC_UPLOAD_BYTES"]:
        return distribution_request(book=book, user_ids=user_ids_from_file(file=file, filename=filename), actor=actor)
    _job_refused_check(book)
    return file_job_create(book=book, kind=Job.Kind.DISTRIBUTE, actor=actor, file=file, shape=shape)
