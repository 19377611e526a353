"""Upload of a list of codes: normalisation, duplicates refused whole or skipped on request, invalid rows, tenants."""

import pytest

from books.models import Code, Event
from books.services.code_creation import codes_upload, upload_request
from tests.factories import CodeFactory, CouponBookFactory, refused

pytestmark = pytest.mark.django_db


def stored_codes(book) -> list[str]:
    return sorted(Code.objects.filter(book=book).values_list("code", flat=True))


def test_upload_stores_codes_stripped_and_upper_case(tenant, book, actor):
    # When
    result = codes_upload(book=book, codes=["  summer-24 ", "\tvip_gold\n", "ABC123"], actor=actor)
    # Then
    assert result.created == 3
    assert result.skipped == [] and result.skipped_count == 0
    assert stored_codes(book) == ["ABC123", "SUMMER-24", "VIP_GOLD"]
    rows = Code.objects.filter(book=book)
    assert {(c.tenant_id, c.state, c.max_uses, c.redeemed_count, c.user_id) for c in rows} == {
        (tenant.pk, Code.State.FREE, book.uses_per_code, 0, None)
    }
    assert len({c.shuffle for c in rows}) == 3
    event = Event.objects.get(book=book)
    assert (event.kind, event.code, event.data) == (Event.Kind.UPLOADED, None, {"count": 3, "skipped": 0})
    assert (event.actor_type, event.actor_id) == (actor.kind, actor.id)


def test_upload_of_a_code_differing_only_in_case_from_a_stored_one_is_a_duplicate(tenant, book, actor):
    # Given
    codes_upload(book=book, codes=["WELCOME10"], actor=actor)
    # When / Then: in another book of the same tenant, lower case and padded
    other = CouponBookFactory(tenant=tenant)
    error = refused("duplicate_codes", codes_upload, book=other, codes=[" welcome10 ", "FRESH1"], actor=actor)
    assert error.details == {"codes": ["WELCOME10"], "count": 1}
    assert stored_codes(other) == []


def test_duplicates_inside_the_upload_refuse_it_whole(book, actor):
    error = refused("duplicate_codes", codes_upload, book=book, codes=["AAA1", "BBB2", "aaa1", "CCC3", "bbb2 "], actor=actor)
    assert error.details == {"codes": ["AAA1", "BBB2"], "count": 2}
    assert "nothing was imported" in error.message
    assert stored_codes(book) == []


def test_duplicates_against_the_tenant_refuse_the_upload_whole(tenant, book, actor):
    # Given
    CodeFactory(book=CouponBookFactory(tenant=tenant), code="TAKEN1")
    CodeFactory(book=book, code="TAKEN2")
    # When / Then
    error = refused("duplicate_codes", codes_upload, book=book, codes=["NEW1", "TAKEN2", "NEW2", "TAKEN1"], actor=actor)
    assert sorted(error.details["codes"]) == ["TAKEN1", "TAKEN2"]
    assert error.details["count"] == 2
    assert stored_codes(book) == ["TAKEN2"]


def test_skip_duplicates_imports_the_rest_and_reports_the_skipped(tenant, book, actor):
    # Given
    CodeFactory(book=CouponBookFactory(tenant=tenant), code="TAKEN1")
    # When
    result = codes_upload(book=book, codes=["NEW1", "taken1", "NEW2", "new1", "NEW3"], actor=actor, skip_duplicates=True)
    # Then: each new code once; the repeat and the stored code reported
    assert result.created == 3
    assert sorted(result.skipped) == ["NEW1", "TAKEN1"]
    assert result.skipped_count == 2
    assert stored_codes(book) == ["NEW1", "NEW2", "NEW3"]
    assert Code.objects.get(code="TAKEN1").book_id != book.pk
    event = Event.objects.get(book=book)
    assert event.data == {"count": 3, "skipped": 2}


def test_skip_duplicates_with_nothing_new_imports_nothing(book, actor):
    codes_upload(book=book, codes=["ONLY1"], actor=actor)
    result = codes_upload(book=book, codes=["only1"], actor=actor, skip_duplicates=True)
    assert (result.created, result.skipped) == (0, ["ONLY1"])
    assert Code.objects.filter(book=book).count() == 1
    assert Event.objects.filter(book=book).count() == 1


def test_a_long_list_of_duplicates_is_listed_up_to_a_limit_with_the_full_count(book, actor):
    codes = [f"DUP{n:04d}" for n in range(150)]
    codes_upload(book=book, codes=codes, actor=actor)
    error = refused("duplicate_codes", codes_upload, book=book, codes=codes, actor=actor)
    assert error.details["count"] == 150
    assert len(error.details["codes"]) == 100


def test_invalid_codes_are_listed_with_their_rows_and_nothing_is_imported(book, actor):
    # (A code that is no string at all is refused by the edge: api/tests/test_creation_input.py.)
    codes = ["GOOD1", "no", "bad code", "X" * 65, "12", "", "ümlaut", "semi;colon", "OK-2", "   "]
    error = refused("invalid_codes", codes_upload, book=book, codes=codes, actor=actor)
    rows = [entry["row"] for entry in error.details["invalid"]]
    assert rows == [2, 3, 4, 5, 6, 7, 8, 10]
    assert error.details["count"] == 8
    assert error.details["invalid"][0] == {"row": 2, "value": "no"}
    assert stored_codes(book) == []


@pytest.mark.parametrize("codes", [[], (), iter([])])
def test_an_empty_upload_is_refused(book, actor, codes):
    refused("empty_upload", codes_upload, book=book, codes=codes, actor=actor)


def test_the_same_code_in_another_tenant_is_fine(tenant, other_tenant, book, actor):
    # Given
    CodeFactory(book=CouponBookFactory(tenant=other_tenant), code="SHARED-NAME")
    # When
    result = codes_upload(book=book, codes=["shared-name"], actor=actor)
    # Then
    assert result.created == 1
    assert Code.objects.filter(code="SHARED-NAME").count() == 2
    assert Code.objects.get(tenant=tenant, code="SHARED-NAME").book_id == book.pk


def test_upload_request_under_the_limit_answers_at_once(book, actor):
    result = upload_request(book=book, codes=["REQ1", "REQ2"], actor=actor)
    assert result.created == 2
    assert stored_codes(book) == ["REQ1", "REQ2"]


def test_upload_request_refuses_bad_input_before_any_work(book, actor):
    refused("empty_upload", upload_request, book=book, codes=[], actor=actor)
    refused("invalid_codes", upload_request, book=book, codes=["OK1", "?"], actor=actor)
