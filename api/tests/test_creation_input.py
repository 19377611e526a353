"""Generation and upload requests at the edge: GenerateInput and UploadJsonInput type the count, the pattern and
the list before the services run (moved here from the service tests when the services began to take typed values)."""

import pytest

from books.models import Code
from tests.factories import rows_snapshot

from .conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("count", [0, -1, -100, 5_000_001, 10**12, "abc", "1.5", 1.5, None, True, [], "", "1e3"])
def test_a_bad_count_is_refused(api, active_book, count):
    before = rows_snapshot()
    error = assert_error(api.post(f"/api/v1/books/{active_book.pk}/codes/generate/", {"count": count}, format="json"), 400)
    assert error["code"] == "invalid_input"
    assert error["details"]["field"] == "count"
    assert rows_snapshot() == before


def test_a_count_given_as_a_numeric_string_is_accepted(api, active_book):
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/generate/", {"count": "7"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 7
    assert Code.objects.filter(book=active_book).count() == 7


@pytest.mark.parametrize(
    ("fields", "field"), [({"pattern": 123}, "pattern"), ({"pattern": "****", "charset": ["A", "B"]}, "charset")]
)
def test_a_pattern_or_charset_that_is_not_a_string_is_refused(api, active_book, fields, field):
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/generate/", {"count": 1, **fields}, format="json")
    assert assert_error(response, 400, "invalid_input")["details"]["field"] == field
    assert not Code.objects.exists()


@pytest.mark.parametrize("codes", ["ABC123", None, 42, {"code": "ABC123"}])
def test_an_upload_that_is_not_a_list_is_refused(api, active_book, codes):
    before = rows_snapshot()
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/upload/", {"codes": codes}, format="json")
    assert assert_error(response, 400, "invalid_input")["details"]["field"] == "codes"
    assert rows_snapshot() == before


def test_an_upload_with_a_code_that_is_no_string_is_refused_on_its_item(api, active_book):
    codes = ["GOOD1", "no", 12345, None]
    response = api.post(f"/api/v1/books/{active_book.pk}/codes/upload/", {"codes": codes}, format="json")
    error = assert_error(response, 400, "invalid_input")
    assert [entry["field"] for entry in error["details"]["errors"]] == ["codes.2", "codes.3"]
    assert not Code.objects.exists()
