"""Putting codes into a book: generation from a pattern and upload of a list; large requests become jobs.

Either path creates exactly what it reports in one transaction: a failure leaves the book as it was.
Generated codes never collide with the tenant's existing codes; an upload with duplicates is refused whole
(listing them) unless the caller asks to skip them.
"""

import itertools
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ApplicationError
from core.models import Job

from .. import lock_objects, rules
from ..inputs import is_valid_code, normalize_code
from ..models import Code, CouponBook, Event, shuffle_keys
from ..parsers import codes_from_file, upload_inspect
from ..patterns import Pattern, pattern_capacity_check, pattern_draw, pattern_parse
from .book_jobs import book_job_create, file_job_create
from .events import event_record

Progress = Callable[[int], None]
# Codes per COPY, per existence query and per generation round: large enough to amortise round trips, small
# enough to report progress often and keep each statement's parameter list modest.
BATCH = 20000
# A generation round that finds no new code this many times in a row means the pattern's space is used up.
MAX_BARREN_ROUNDS = 20
# A pattern with at most this many codes is generated from the list of its codes the tenant does not hold yet,
# sampled at random: random draws in a small, nearly full space keep hitting taken codes and would give up
# before finding the last free ones (filling all 100 codes of "A##" failed about one time in six).
ENUMERATED_SPACE = 100_000
LISTED_DUPLICATES = 100


@dataclass
class CreationResult:
    created: int
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    skipped_count: int = 0


def _book_writable_check(book: CouponBook) -> CouponBook:
    book = lock_objects.book_lock(book_id=book.pk)
    rules.codes_addable_check(status=book.status, book_id=book.pk)
    return book


def _book_queueable_check(book: CouponBook) -> None:
    """Before a job is queued: the row, not the caller's copy (a book archived since it was read gets no job)."""
    rules.codes_addable_check(status=CouponBook.objects.values_list("status", flat=True).get(pk=book.pk), book_id=book.pk)


def codes_stored(*, tenant_id: int, codes: list[str]) -> set[str]:
    """Which of these codes the tenant holds already (in any book): the upload's duplicate check, with
    codes_repeated, for the service and the admin preview alike."""
    found: set[str] = set()
    for start in range(0, len(codes), BATCH):
        chunk = codes[start : start + BATCH]
        found.update(Code.objects.filter(tenant_id=tenant_id, code__in=chunk).values_list("code", flat=True))
    return found


def codes_repeated(codes: list[str]) -> dict[int, int]:
    """The rows (numbered from 1) that repeat an earlier row of the list, each with the row it repeats."""
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for number, code in enumerate(codes, start=1):
        if code in first:
            repeats[number] = first[code]
        else:
            first[code] = number
    return repeats


def codes_insert(*, book: CouponBook, codes: list[str]) -> None:
    """Insert new free codes into the book through COPY, the fastest bulk path PostgreSQL offers."""
    now = timezone.now()
    shuffles = shuffle_keys(len(codes))
    columns = "tenant_id, book_id, code, state, max_uses, book_limited, redeemed_count, shuffle, created_at"
    # COPY goes through psycopg's own cursor, past Django's wrapper: wrap_database_errors turns a clash on the
    # unique index into Django's IntegrityError, which the callers handle.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {Code._meta.db_table} ({columns}) FROM STDIN") as copy:
            for code, shuffle in zip(codes, shuffles, strict=True):
                copy.write_row(
                    (book.tenant_id, book.pk, code, Code.State.FREE, book.uses_per_code, book.has_book_limits, 0, shuffle, now)
                )


def _insert_batch(*, book: CouponBook, codes: list[str]) -> bool:
    """Insert in a savepoint; False (and nothing inserted) when a code clashes with a stored one."""
    try:
        with transaction.atomic():
            codes_insert(book=book, codes=codes)
    except IntegrityError:
        return False
    return True


# --- Generation ---------------------------------------------------------------------------------------------


def _space_sample(*, book: CouponBook, pattern: Pattern, need: int, asked: int, created: int) -> list[str]:
    """`need` codes picked at random (cryptographic source) among the pattern's codes the tenant does not hold.

    `created` codes of a request for `asked` are stored already (and rolled back if this refuses).
    """
    everything = ["".join(symbols) for symbols in itertools.product(*pattern.positions)]
    stored = codes_stored(tenant_id=book.tenant_id, codes=everything)
    left = [code for code in everything if code not in stored]
    if len(left) < need:
        available = len(left) + created
        raise ApplicationError(
            "generation_collisions",
            f"Only {available:,} codes of the pattern {pattern.text!r} (space {pattern.space:,}) are not taken yet in "
            f"this tenant; {asked:,} were asked for.",
            {"available": available, "space": pattern.space, "count": asked},
        )
    return secrets.SystemRandom().sample(left, need)


def generation_prepare(*, count: int, pattern: str | None = None, charset: str | None = None) -> tuple[Pattern, list[str]]:
    """Check a generation request before any work: the pattern, and whether its space can hold `count` codes (the
    edges bound the count: GenerateInput, GenerateCodesForm)."""
    parsed = pattern_parse(pattern, charset)
    warnings = pattern_capacity_check(parsed, count)
    return parsed, warnings


def codes_generate(
    *,
    book: CouponBook,
    count: int,
    actor: Actor,
    pattern: str | None = None,
    charset: str | None = None,
    progress: Progress | None = None,
) -> CreationResult:
    """Create exactly `count` new random codes of the pattern in the book."""
    parsed, warnings = generation_prepare(count=count, pattern=pattern, charset=charset)
    with transaction.atomic():
        book = _book_writable_check(book)
        created = barren = 0
        while created < count:
            need = min(BATCH, count - created)
            # Draw a little more than needed: repeats within the draw are dropped.
            drawn = list(dict.fromkeys(pattern_draw(parsed, need + need // 8 + 8)))
            # Optimistic first: in a large space a clash with a stored code is rare and the unique index catches
            # it, so only a batch that clashes pays for looking its codes up (measured: the look-ups cost about a
            # third of a million-code generation).
            fresh = drawn[:need]
            if not _insert_batch(book=book, codes=fresh):
                stored = codes_stored(tenant_id=book.tenant_id, codes=drawn)
                fresh = [code for code in drawn if code not in stored][:need]
                if not fresh or not _insert_batch(book=book, codes=fresh):
                    barren += 1
                    small = parsed.space <= ENUMERATED_SPACE
                    if small:  # pick among the codes still free instead (fails only if too few are left)
                        fresh = _space_sample(book=book, pattern=parsed, need=need, asked=count, created=created)
                    if not small or not _insert_batch(book=book, codes=fresh):
                        if barren >= MAX_BARREN_ROUNDS:
                            raise ApplicationError(
                                "generation_collisions",
                                f"Only {created:,} of {count:,} new codes could be found: "
                                "the pattern's space is nearly used up by existing codes.",
                                {"created": created, "space": parsed.space},
                            )
                        continue
            barren = 0
            created += len(fresh)
            if progress:
                progress(created)
        event_record(
            book=book,
            kind=Event.Kind.GENERATED,
            actor=actor,
            user_id=None,
            data={"count": count, "pattern": parsed.text, "space": parsed.space},
        )
    return CreationResult(created=count, warnings=warnings)


# --- Upload -------------------------------------------------------------------------------------------------


def upload_prepare(*, codes: Iterable[str]) -> list[str]:
    """Normalise an uploaded list; refuse it whole when it is empty, too large, or holds an invalid code."""
    normalized, invalid = [], []
    limit = settings.COUPONS["MAX_CODES_PER_REQUEST"]
    for position, raw in enumerate(codes, start=1):
        if position > limit:
            raise ApplicationError("invalid_input", f"An upload holds at most {limit:,} codes.", {"field": "codes"})
        value = normalize_code(raw)
        if not is_valid_code(value):
            invalid.append({"row": position, "value": raw[:80]})
            continue
        normalized.append(value)
    if invalid:
        raise ApplicationError(
            "invalid_codes",
            f"{len(invalid):,} code(s) are not 3 to 64 letters, digits, '-' or '_'; nothing was imported.",
            {"invalid": invalid[:LISTED_DUPLICATES], "count": len(invalid)},
        )
    if not normalized:
        raise ApplicationError("empty_upload", "The upload holds no code.", {"field": "codes"})
    return normalized


def codes_upload(
    *, book: CouponBook, codes: Iterable[str], actor: Actor, skip_duplicates: bool = False, progress: Progress | None = None
) -> CreationResult:
    """Import a list of codes into the book, all or nothing."""
    normalized = upload_prepare(codes=codes)
    for attempt in (1, 2):
        try:
            return _codes_upload_once(
                book=book, codes=normalized, actor=actor, skip_duplicates=skip_duplicates, progress=progress
            )
        except IntegrityError:
            # Another upload stored one of these codes between our check and our insert. Nothing of ours was
            # kept (one transaction); run the check again, which now sees their codes.
            if attempt == 2:
                raise ApplicationError(
                    "duplicate_codes", "Codes of this upload were stored concurrently by another request; try again."
                ) from None
    raise AssertionError("unreachable")


def _insert_all(*, book: CouponBook, codes: list[str], progress: Progress | None) -> None:
    for start in range(0, len(codes), BATCH):
        codes_insert(book=book, codes=codes[start : start + BATCH])
        if progress:
            progress(start + len(codes[start : start + BATCH]))


def _codes_upload_once(
    *, book, codes: list[str], actor: Actor, skip_duplicates: bool, progress: Progress | None
) -> CreationResult:
    with transaction.atomic():
        book = _book_writable_check(book)
        repeated = list(dict.fromkeys(codes[row - 1] for row in sorted(codes_repeated(codes).values())))
        unique = list(dict.fromkeys(codes))
        duplicates: list[str] = []
        fresh = unique
        # Optimistic, as generation: in the usual upload no code is stored yet, and the unique index on
        # (tenant, code) proves it while the rows go in. Only an upload that clashes (rolled back to the savepoint)
        # pays for looking its codes up, to list the duplicates or to skip them (measured: the look-up of every
        # code made a 1,000,000-code upload 1.5x a raw COPY).
        if repeated or not _insert_batch_all(book=book, codes=unique, progress=progress):
            stored = codes_stored(tenant_id=book.tenant_id, codes=unique)
            duplicates = list(dict.fromkeys(repeated + sorted(stored)))
            if duplicates and not skip_duplicates:
                raise ApplicationError(
                    "duplicate_codes",
                    f"{len(duplicates):,} code(s) are repeated in the upload or exist already; nothing was imported. "
                    "Send skip_duplicates to import the others.",
                    {"codes": duplicates[:LISTED_DUPLICATES], "count": len(duplicates)},
                )
            fresh = [code for code in unique if code not in stored]
            # A clash now is another upload storing one of these codes since the look-up: codes_upload retries.
            _insert_all(book=book, codes=fresh, progress=progress)
        if fresh:
            event_record(
                book=book,
                kind=Event.Kind.UPLOADED,
                actor=actor,
                user_id=None,
                data={"count": len(fresh), "skipped": len(duplicates)},
            )
    return CreationResult(created=len(fresh), skipped=duplicates[:LISTED_DUPLICATES], skipped_count=len(duplicates))


def _insert_batch_all(*, book: CouponBook, codes: list[str], progress: Progress | None) -> bool:
    """Insert every code in a savepoint; False (and nothing inserted) when one clashes with a stored code."""
    try:
        with transaction.atomic():
            _insert_all(book=book, codes=codes, progress=progress)
    except IntegrityError:
        return False
    return True


# --- Requests that may become jobs --------------------------------------------------------------------------


def generation_request(
    *, book: CouponBook, count: int, actor: Actor, pattern: str | None = None, charset: str | None = None
) -> CreationResult | Job:
    """Generate at once, or (above the synchronous limit) queue a job and return it. A bad pattern fails here either way."""
    parsed, warnings = generation_prepare(count=count, pattern=pattern, charset=charset)
    if count <= settings.COUPONS["SYNC_CODES_LIMIT"]:
        return codes_generate(book=book, count=count, actor=actor, pattern=parsed.text, charset=charset)
    _book_queueable_check(book)
    params = {"count": count, "pattern": parsed.text, "charset": charset or None, "warnings": warnings}
    return book_job_create(book=book, kind=Job.Kind.GENERATE, actor=actor, total=count, params=params)


def upload_request(
    *, book: CouponBook, codes: Iterable[str], actor: Actor, skip_duplicates: bool = False
) -> CreationResult | Job:
    """Upload at once, or (above the synchronous limit) store the list with a job and queue it."""
    normalized = upload_prepare(codes=codes)
    if len(normalized) <= settings.COUPONS["SYNC_CODES_LIMIT"]:
        return codes_upload(book=book, codes=normalized, actor=actor, skip_duplicates=skip_duplicates)
    _book_queueable_check(book)
    listed = ContentFile("\n".join(normalized).encode())  # one code a line, as run_upload_job reads it back
    params = {"skip_duplicates": skip_duplicates}
    return book_job_create(
        book=book, kind=Job.Kind.UPLOAD, actor=actor, total=len(normalized), params=params, input_file=listed, input_suffix="txt"
    )


def upload_file_request(
    *, book: CouponBook, file: BinaryIO, filename: str, actor: Actor, skip_duplicates: bool = False
) -> CreationResult | Job:
    """An uploaded CSV/XLSX file: its bounds checked at once (a refusal leaves nothing behind); a small file parsed
    and uploaded like a list, a large one stored with a job that parses and imports it (its parse would not fit
    in a request's time)."""
    shape = upload_inspect(file, filename)
    if shape.inflated <= settings.COUPONS["SYNC_UPLOAD_BYTES"]:
        codes = codes_from_file(file=file, filename=filename)
        return upload_request(book=book, codes=codes, actor=actor, skip_duplicates=skip_duplicates)
    _book_queueable_check(book)
    params = {"skip_duplicates": skip_duplicates}
    return file_job_create(book=book, kind=Job.Kind.UPLOAD, actor=actor, file=file, shape=shape, params=params)
