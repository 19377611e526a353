"""Code generation from a pattern: the pattern syntax, the space check, guessability warnings, collisions, counts."""

import re

import pytest

from books.models import Code, Event
from books.patterns import DEFAULT_CHARSET, pattern_parse
from books.services.code_creation import codes_generate, codes_upload, generation_request
from tests.factories import CodeFactory, CouponBookFactory, refused

pytestmark = pytest.mark.django_db


def stored_codes(book) -> list[str]:
    return list(Code.objects.filter(book=book).values_list("code", flat=True))


@pytest.mark.slow
def test_generation_of_100000_codes_matches_the_pattern_is_unique_and_exact(book, actor):
    # Given
    pattern = pattern_parse("CP-********")
    # When
    result = codes_generate(book=book, count=100_000, pattern="CP-********", actor=actor)
    # Then
    codes = stored_codes(book)
    assert result.created == 100_000
    assert len(codes) == 100_000
    assert len(set(codes)) == 100_000
    assert all(pattern.matches(code) for code in codes)
    assert Code.objects.filter(book=book).exclude(state=Code.State.FREE).count() == 0
    assert Code.objects.filter(book=book, max_uses=book.uses_per_code, redeemed_count=0, user_id__isnull=True).count() == 100_000
    # Every code got its own random shuffle key (random assignment walks them in this order).
    assert Code.objects.filter(book=book).values("shuffle").distinct().count() > 99_990
    event = Event.objects.get(book=book)
    assert (event.kind, event.code, event.data["count"]) == (Event.Kind.GENERATED, None, 100_000)


def test_default_pattern_is_ten_symbols_of_the_charset_without_look_alikes(book, actor):
    # When
    result = codes_generate(book=book, count=200, actor=actor)
    # Then
    codes = stored_codes(book)
    assert result.created == len(codes) == len(set(codes)) == 200
    assert result.warnings == []
    for code in codes:
        assert len(code) == 10
        assert set(code) <= set(DEFAULT_CHARSET)
        assert not set(code) & set("01OI")


@pytest.mark.parametrize(
    ("pattern", "charset", "regex"),
    [
        ("SUMMER-####", None, r"SUMMER-[0-9]{4}"),
        ("??-##", None, r"[A-Z]{2}-[0-9]{2}"),
        ("vip_***", None, r"VIP_[ABCDEFGHJKLMNPQRSTUVWXYZ2-9]{3}"),
        ("X*****", "ab", r"X[AB]{5}"),
        ("****", "0123456789-", r"[0-9-]{4}"),
        ("#?*#?*", "XYZ", r"[0-9][A-Z][XYZ][0-9][A-Z][XYZ]"),
    ],
)
def test_generated_codes_follow_the_pattern(book, actor, pattern, charset, regex):
    # When
    codes_generate(book=book, count=20, pattern=pattern, charset=charset, actor=actor)
    # Then
    parsed = pattern_parse(pattern, charset)
    codes = stored_codes(book)
    assert len(set(codes)) == 20
    for code in codes:
        assert re.fullmatch(regex, code), code
        assert parsed.matches(code)


def test_pattern_matches_checks_each_position():
    parsed = pattern_parse("AB-#?*", "XY")
    assert parsed.matches("AB-1QX")
    assert not parsed.matches("AB-1QZ")  # Z is not in the charset
    assert not parsed.matches("AC-1QX")  # literal differs
    assert not parsed.matches("AB-QQX")  # a letter where a digit goes
    assert not parsed.matches("AB-1QXX")  # too long
    assert parsed.space == 10 * 26 * 2


def test_a_count_larger_than_the_space_is_refused_with_the_space_size(book, actor):
    # "A####" allows 10,000 codes.
    error = refused("pattern_space_too_small", codes_generate, book=book, count=10_001, pattern="A####", actor=actor)
    assert "10,000" in error.message
    assert error.details == {"space": 10_000, "count": 10_001}
    # The same through the request that would queue a job: refused before any job exists.
    error = refused("pattern_space_too_small", generation_request, book=book, count=10_001, pattern="A####", actor=actor)
    assert "10,000" in error.message


def test_a_count_equal_to_the_space_fills_it_exactly(book, actor):
    result = codes_generate(book=book, count=100, pattern="Z##", actor=actor)
    assert result.created == 100
    assert sorted(stored_codes(book)) == [f"Z{n:02d}" for n in range(100)]


@pytest.mark.parametrize("pattern", ["ABCDEF", "SUMMER-24", "a-b-c"])
def test_a_pattern_without_a_random_symbol_is_refused(book, actor, pattern):
    refused("pattern_no_random_symbol", codes_generate, book=book, count=1, pattern=pattern, actor=actor)


@pytest.mark.parametrize(
    ("pattern", "charset"),
    [
        ("AB$###", None),  # a symbol that cannot appear in a code
        ("AB ###", None),  # inner white space
        ("ÄB###", None),  # a non-ASCII letter
        ("##", None),  # codes are at least 3 characters
        ("#" * 65, None),  # and at most 64
        ("****", "A"),  # a charset of one symbol
        ("****", "AB!"),  # a charset with a symbol that cannot appear in a code
    ],
)
def test_an_invalid_pattern_is_refused(book, actor, pattern, charset):
    refused("invalid_pattern", codes_generate, book=book, count=1, pattern=pattern, charset=charset, actor=actor)


def test_easy_to_guess_codes_are_generated_with_a_warning(book, actor):
    # 50 codes out of a space of 1,000: one guess in 20 hits.
    result = codes_generate(book=book, count=50, pattern="G###", actor=actor)
    assert result.created == 50
    assert len(result.warnings) == 1
    assert "easy to guess" in result.warnings[0]
    assert "1,000" in result.warnings[0]


def test_generation_never_collides_with_the_tenants_existing_codes(tenant, book, actor):
    # Given: 10 of the 100 codes of "A##" exist already, in another book of the same tenant
    other_book = CouponBookFactory(tenant=tenant)
    uploaded = [f"A{n}" for n in range(10, 100, 10)] + ["A00"]
    codes_upload(book=other_book, codes=uploaded, actor=actor)
    # When: the other 90 are asked for
    result = codes_generate(book=book, count=90, pattern="A##", actor=actor)
    # Then: exactly the 90 missing ones were created
    assert result.created == 90
    generated = stored_codes(book)
    assert len(generated) == 90
    assert not set(generated) & set(uploaded)
    assert set(generated) | set(uploaded) == {f"A{n:02d}" for n in range(100)}


def test_generation_refuses_when_existing_codes_fill_the_space(tenant, book, actor):
    # Given: every code of "B##" is taken
    codes_generate(book=book, count=100, pattern="B##", actor=actor)
    # When / Then: there is room for no new code; nothing is half-created
    error = refused("generation_collisions", codes_generate, book=book, count=1, pattern="B##", actor=actor)
    assert error.details["space"] == 100
    assert error.details["available"] == 0


def test_generation_refuses_a_count_above_the_codes_still_free_and_creates_none(book, actor):
    # Given: 95 of the 100 codes of "E##" are taken
    codes_generate(book=book, count=95, pattern="E##", actor=actor)
    # When / Then: 10 asked, 5 free
    error = refused("generation_collisions", codes_generate, book=book, count=10, pattern="E##", actor=actor)
    assert error.details["available"] == 5
    assert "5" in error.message
    # The 5 that are left can still be had.
    assert codes_generate(book=book, count=5, pattern="E##", actor=actor).created == 5
    assert Code.objects.filter(book=book).count() == 100


def test_other_tenants_codes_are_not_collisions(tenant, other_tenant, book, actor):
    # Given: another tenant holds every code of the pattern
    codes_generate(book=CouponBookFactory(tenant=other_tenant), count=100, pattern="C##", actor=actor)
    # When
    result = codes_generate(book=book, count=100, pattern="C##", actor=actor)
    # Then
    assert result.created == 100
    assert Code.objects.filter(tenant=tenant).count() == 100
    assert Code.objects.filter(tenant=other_tenant).count() == 100


def test_generated_codes_carry_the_books_uses_and_a_batch_event(tenant, actor):
    # Given
    book = CouponBookFactory(tenant=tenant, uses_per_code=3)
    # When
    codes_generate(book=book, count=5, pattern="U-#####", actor=actor)
    # Then
    assert set(Code.objects.filter(book=book).values_list("max_uses", "state", "tenant_id")) == {(3, "free", tenant.pk)}
    event = Event.objects.get(book=book)
    assert event.kind == Event.Kind.GENERATED
    assert event.code is None
    assert (event.actor_type, event.actor_id) == (actor.kind, actor.id)
    assert event.data == {"count": 5, "pattern": "U-#####", "space": 100_000}


def test_generation_request_under_the_limit_answers_at_once(book, actor):
    result = generation_request(book=book, count=30, pattern="R-######", actor=actor)
    assert result.created == 30
    assert Code.objects.filter(book=book).count() == 30


def test_generation_around_an_existing_code_leaves_that_code_in_its_own_book(tenant, book, actor):
    # Given: a code of the pattern stored in a book of the tenant
    existing = CodeFactory(book=CouponBookFactory(tenant=tenant), code="D00")
    # When: 99 generated in the pattern of 100
    codes_generate(book=book, count=99, pattern="D##", actor=actor)
    # Then: the existing row is untouched
    assert Code.objects.get(pk=existing.pk).book_id == existing.book_id
    assert "D00" not in stored_codes(book)
