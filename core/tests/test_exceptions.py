"""The application error: stable codes, one HTTP status each, and the JSON error shape."""

import pytest

from core.exceptions import ERROR_STATUS, ApplicationError

from .documented_errors import documented_error_statuses

# Every error code SPEC "Rules" names, with the status it must answer.
RULE_CODES = {
    "book_exhausted": 409,
    "user_code_limit_reached": 409,
    "code_already_assigned": 409,
    "code_locked": 409,
    "code_exhausted": 409,
    "user_redemption_limit_reached": 409,
}


def test_every_code_is_a_stable_identifier_with_an_error_status():
    assert all(400 <= status < 600 for status in ERROR_STATUS.values())
    for code in ERROR_STATUS:
        assert code == code.lower() and " " not in code


@pytest.mark.parametrize(("code", "status"), RULE_CODES.items())
def test_the_rule_codes_of_the_spec_answer_409(code, status):
    assert ApplicationError(code, "m").status == status


def test_the_codes_and_statuses_are_those_the_readme_documents():
    documented = documented_error_statuses()
    assert sorted(ERROR_STATUS) == sorted(documented)
    for code, status in documented.items():
        assert ApplicationError(code, "m").status == status, code


def test_error_carries_code_message_details_and_its_json_shape():
    error = ApplicationError("code_locked", "Held by a checkout.", {"code": "ABC"})
    assert (error.code, error.message, error.details, str(error)) == (
        "code_locked",
        "Held by a checkout.",
        {"code": "ABC"},
        "Held by a checkout.",
    )
    assert error.as_dict() == {"error": {"code": "code_locked", "message": "Held by a checkout.", "details": {"code": "ABC"}}}
    assert ApplicationError("code_locked", "m").details == {}
    assert "code_locked" in repr(error)


def test_an_unknown_code_is_a_programming_error():
    with pytest.raises(ValueError, match="no_such_code"):
        ApplicationError("no_such_code", "m")
