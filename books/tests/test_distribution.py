"""Distribution (books/services/distribution.py): one code per user of a list, idempotent, all or nothing."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openpyxl import Workbook

from books.models import BookUser, Code, CouponBook, Event
from books.parsers import codes_from_file, user_ids_from_file
from books.services.code_creation import codes_insert
from books.services.distribution import codes_distribute, distribution_request, result_csv
from core.exceptions import ApplicationError
from core.models import Job
from tests.factories import CodeFactory, CouponBookFactory

pytestmark = pytest.mark.django_db


def free_codes(book, count: int, prefix: str = "D") -> None:
    codes_insert(book=book, codes=[f"{prefix}{book.pk}X{i:06d}" for i in range(count)])


def holders(book) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for user_id, code in Code.objects.filter(book=book, user_id__isnull=False).values_list("user_id", "code"):
        held.setdefault(user_id, []).append(code)
    return held


def test_each_user_of_the_list_gets_one_free_code_of_the_book(book, actor):
    # Given
    free_codes(book, 10)
    # When
    result = codes_distribute(book=book, user_ids=["ann", "bob", "cid"], actor=actor)
    # Then
    assert result.summary == {"total": 3, "assigned": 3, "already_assigned": 0, "invalid": 0, "duplicates": 0}
    held = holders(book)
    assert sorted(held) == ["ann", "bob", "cid"]
    assert all(len(codes) == 1 for codes in held.values())
    assert [(u, c, s) for u, c, s in result.rows] == [(u, held[u][0], "assigned") for u in ("ann", "bob", "cid")]
    assert Code.objects.filter(book=book, state=Code.State.ASSIGNED).count() == 3
    assert all(code.assigned_at for code in Code.objects.filter(book=book, state=Code.State.ASSIGNED))


def test_a_user_who_holds_a_code_keeps_it_and_is_reported_never_given_a_second(tenant, actor):
    # Given a book that would allow three codes a user, and ann holding one
    book = CouponBookFactory(tenant=tenant, max_codes_per_user=3)
    free_codes(book, 5)
    CodeFactory(book=book, code="ANNS-OWN", user_id="ann", state=Code.State.ASSIGNED)
    # When
    result = codes_distribute(book=book, user_ids=["ann", "bob"], actor=actor)
    # Then
    assert result.rows[0] == ("ann", "ANNS-OWN", "already_assigned")
    assert result.rows[1][2] == "assigned"
    assert holders(book)["ann"] == ["ANNS-OWN"]
    assert (result.assigned, result.already_assigned) == (1, 1)


def test_a_voided_code_does_not_count_as_held(book, actor):
    free_codes(book, 2)
    CodeFactory(book=book, code="VOIDED-1", user_id="ann", state=Code.State.VOIDED)
    result = codes_distribute(book=book, user_ids=["ann"], actor=actor)
    assert result.rows[0][2] == "assigned" and result.rows[0][1] != "VOIDED-1"


def test_the_same_list_twice_assigns_nothing_new(book, actor):
    # Given
    free_codes(book, 10)
    first = codes_distribute(book=book, user_ids=["ann", "bob", "cid"], actor=actor)
    # When
    second = codes_distribute(book=book, user_ids=["ann", "bob", "cid"], actor=actor)
    # Then
    assert second.summary == {"total": 3, "assigned": 0, "already_assigned": 3, "invalid": 0, "duplicates": 0}
    assert [(u, c) for u, c, _ in second.rows] == [(u, c) for u, c, _ in first.rows]
    assert {s for _, _, s in second.rows} == {"already_assigned"}
    assert Code.objects.filter(book=book, state=Code.State.ASSIGNED).count() == 3


def test_too_few_free_codes_refuse_the_whole_list_before_assigning_anything(book, actor):
    # Given three free codes for four users who need one
    free_codes(book, 3)
    # When
    with pytest.raises(ApplicationError) as caught:
        codes_distribute(book=book, user_ids=["a", "b", "c", "d"], actor=actor)
    # Then
    assert caught.value.code == "book_exhausted"
    assert caught.value.details == {"book": book.pk, "count": 4, "available": 3}
    assert not Code.objects.filter(book=book).exclude(state=Code.State.FREE).exists()
    assert not Event.objects.filter(book=book, kind=Event.Kind.DISTRIBUTED).exists()


def test_users_who_hold_a_code_need_no_free_one(book, actor):
    # Two free codes are enough for three users when one of them holds a code already.
    free_codes(book, 2)
    CodeFactory(book=book, code="HELD-1", user_id="a", state=Code.State.ASSIGNED)
    result = codes_distribute(book=book, user_ids=["a", "b", "c"], actor=actor)
    assert (result.assigned, result.already_assigned) == (2, 1)


def test_invalid_ids_are_reported_in_their_rows_and_repeats_collapse(book, actor):
    # Given
    free_codes(book, 5)
    too_long = "x" * 256
    # When
    result = codes_distribute(book=book, user_ids=["ann", "", "  ", too_long, "bell\x07", "ann", " bob "], actor=actor)
    # Then
    statuses = [(u[:10], s) for u, _, s in result.rows]
    assert statuses == [
        ("ann", "assigned"),
        ("", "invalid_user_id"),
        ("  ", "invalid_user_id"),
        ("x" * 10, "invalid_user_id"),
        ("bell\ufffd", "invalid_user_id"),
        ("bob", "assigned"),
    ]
    assert result.summary == {"total": 6, "assigned": 2, "already_assigned": 0, "invalid": 4, "duplicates": 1}
    assert sorted(holders(book)) == ["ann", "bob"]


def test_a_list_without_any_valid_id_is_refused(book, actor):
    with pytest.raises(ApplicationError) as caught:
        codes_distribute(book=book, user_ids=["", " "], actor=actor)
    assert caught.value.code == "empty_upload"


def test_a_list_over_the_limit_is_refused_whole(book, actor, settings):
    settings.COUPONS = {**settings.COUPONS, "MAX_DISTRIBUTION_USERS": 3}
    free_codes(book, 5)
    with pytest.raises(ApplicationError) as caught:
        codes_distribute(book=book, user_ids=["a", "b", "c", "d"], actor=actor)
    assert caught.value.code == "request_too_large"
    assert not Code.objects.filter(book=book, user_id__isnull=False).exists()


@pytest.mark.parametrize(
    ("status", "valid_until", "error"),
    [
        (CouponBook.Status.PAUSED, None, "book_not_active"),
        (CouponBook.Status.ARCHIVED, None, "book_archived"),
        (CouponBook.Status.ACTIVE, "past", "book_expired"),
    ],
)
def test_a_book_closed_for_assignment_refuses_a_distribution(tenant, actor, status, valid_until, error):
    book = CouponBookFactory(tenant=tenant, status=status)
    if valid_until:
        CouponBook.objects.filter(pk=book.pk).update(valid_until=timezone.now() - timezone.timedelta(days=1))
    free_codes(book, 2)
    with pytest.raises(ApplicationError) as caught:
        codes_distribute(book=book, user_ids=["a"], actor=actor)
    assert caught.value.code == error


def test_one_event_records_the_run_and_every_user_row_is_locked(book, actor):
    free_codes(book, 5)
    codes_distribute(book=book, user_ids=["a", "b", "c"], actor=actor)
    events = list(Event.objects.filter(book=book))
    assert [(e.kind, e.code_id, e.data["assigned"]) for e in events] == [(Event.Kind.DISTRIBUTED, None, 3)]
    assert set(BookUser.objects.filter(book=book).values_list("user_id", flat=True)) == {"a", "b", "c"}


def test_the_work_is_set_based_not_a_statement_per_user(book, actor):
    # The statements do not grow with the list: 300 users take as many as 3 (one batch each). The claim of free
    # codes may take a second statement when its random start leaves too few codes after it (it wraps around).
    free_codes(book, 400)
    with CaptureQueriesContext(connection) as small:
        codes_distribute(book=book, user_ids=[f"s{i}" for i in range(3)], actor=actor)
    with CaptureQueriesContext(connection) as large:
        codes_distribute(book=book, user_ids=[f"l{i}" for i in range(300)], actor=actor)
    claims = [q for q in large.captured_queries if "SKIP LOCKED" in q["sql"]]
    assert len(claims) in (1, 2)
    assert len(large.captured_queries) - len(claims) == len(small.captured_queries) - sum(
        "SKIP LOCKED" in q["sql"] for q in small.captured_queries
    )
    assert len(large.captured_queries) <= 10


def test_the_result_csv_has_a_header_and_one_row_per_distinct_id(book, actor):
    free_codes(book, 3)
    result = codes_distribute(book=book, user_ids=["ann", "", "ann", "bob"], actor=actor)
    rows = list(csv.reader(io.StringIO(result_csv(result))))
    assert rows[0] == ["user_id", "code", "status"]
    assert [(r[0], r[2]) for r in rows[1:]] == [("ann", "assigned"), ("", "invalid_user_id"), ("bob", "assigned")]
    assert rows[1][1] == holders(book)["ann"][0]


def test_a_list_above_the_sync_limit_becomes_a_job(book, actor, settings):
    settings.COUPONS = {**settings.COUPONS, "SYNC_DISTRIBUTION_LIMIT": 2}
    free_codes(book, 5)
    job = distribution_request(book=book, user_ids=["a", "b", "c"], actor=actor)
    assert isinstance(job, Job)
    assert (job.kind, job.total, job.status) == (Job.Kind.DISTRIBUTE, 3, Job.Status.PENDING)
    assert not Code.objects.filter(book=book, user_id__isnull=False).exists()


def test_a_paused_book_refuses_a_job_before_it_is_queued(tenant, actor, settings):
    settings.COUPONS = {**settings.COUPONS, "SYNC_DISTRIBUTION_LIMIT": 1}
    book = CouponBookFactory(tenant=tenant, status=CouponBook.Status.PAUSED)
    with pytest.raises(ApplicationError) as caught:
        distribution_request(book=book, user_ids=["a", "b"], actor=actor)
    assert caught.value.code == "book_not_active"
    assert not Job.objects.exists()


# --- The file reader ------------------------------------------------------------------------------------------


def test_user_ids_are_read_from_the_user_id_column_of_a_csv_or_the_first_column():
    assert user_ids_from_file(data=b"email,user_id\nx@y,u-1\nz@w,u-2\n") == ["u-1", "u-2"]
    assert user_ids_from_file(data=b"u-1\nu-2\n\nu-3\n") == ["u-1", "u-2", "u-3"]


def test_user_ids_are_read_from_an_xlsx_workbook():
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["user_id"])
    for value in ("u-1", 12345, "u-3"):
        sheet.append([value])
    out = io.BytesIO()
    workbook.save(out)
    assert user_ids_from_file(data=out.getvalue(), filename="list.xlsx") == ["u-1", "12345", "u-3"]


def test_a_file_over_the_user_bound_is_refused(settings):
    settings.COUPONS = {**settings.COUPONS, "MAX_DISTRIBUTION_USERS": 2}
    with pytest.raises(ApplicationError) as caught:
        user_ids_from_file(data=b"user_id\na\nb\nc\n")
    assert caught.value.code == "request_too_large"


def test_the_code_reader_is_unchanged_by_the_user_id_reader():
    assert codes_from_file(data=b"user_id,code\nx,ABC-1\ny,ABC-2\n") == ["ABC-1", "ABC-2"]
