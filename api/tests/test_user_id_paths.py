"""User ids are opaque strings (SPEC "Abuse resistance"): every route that takes one works with any printable id,
`/` included, sent percent-encoded."""

from urllib.parse import quote

import pytest

from .conftest import bearer, end_user_token

pytestmark = pytest.mark.django_db

ODD_IDS = ["shop/42", "a/b/c", "ann smith", "ünïcødé-客户", "x?y#z", "100%", "/leading", "codes"]


@pytest.mark.parametrize("user_id", ODD_IDS)
def test_a_client_lists_the_codes_of_any_printable_user_id(api, make_code, user_id):
    code = make_code()
    assert api.post(f"/api/v1/codes/{code.code}/assign/", {"user_id": user_id}, format="json").status_code == 200
    answer = api.get(f"/api/v1/users/{quote(user_id, safe='')}/codes/")
    assert answer.status_code == 200, answer.content
    assert [row["code"] for row in answer.json()["results"]] == [code.code]


def test_an_end_user_whose_id_holds_a_slash_lists_their_own_codes(signing_key, make_code):
    code = make_code(user_id="shop/42")
    client = bearer(end_user_token(signing_key, "shop/42"))
    answer = client.get("/api/v1/users/shop%2F42/codes/")
    assert answer.status_code == 200
    assert [row["code"] for row in answer.json()["results"]] == [code.code]
    assert client.get("/api/v1/users/shop%2F43/codes/").status_code == 403
