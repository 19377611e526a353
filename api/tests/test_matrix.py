"""Every endpoint, the same questions: no token -> 401; an end-user token where it has no business -> 403;
another tenant's object -> 404; bad input (missing, ill-typed, oversized, unicode junk, NUL) -> 400 JSON."""

import pytest

from core.models import Job
from tests.factories import CodeFactory, CouponBookFactory, RedemptionFactory

from .conftest import assert_error

pytestmark = pytest.mark.django_db

# (method, path template, a valid body or query). {book}, {code}, {redemption}, {job}, {kid} are filled in.
ENDPOINTS = [
    ("get", "/api/v1/books/", None),
    ("post", "/api/v1/books/", {"name": "Spring"}),
    ("get", "/api/v1/books/{book}/", None),
    ("patch", "/api/v1/books/{book}/", {"description": "x"}),
    ("delete", "/api/v1/books/{book}/", None),
    ("get", "/api/v1/books/{book}/stats/", None),
    ("post", "/api/v1/books/{book}/codes/generate/", {"count": 2}),
    ("post", "/api/v1/books/{book}/codes/upload/", {"codes": ["UPLOAD-1"]}),
    ("get", "/api/v1/books/{book}/codes/", None),
    ("post", "/api/v1/books/{book}/assign/", {"user_id": "bob"}),
    ("get", "/api/v1/codes/{code}/", None),
    ("post", "/api/v1/codes/{code}/assign/", {"user_id": "bob"}),
    ("post", "/api/v1/codes/{code}/lock/", {"user_id": "bob"}),
    ("post", "/api/v1/codes/{code}/unlock/", {"user_id": "bob"}),
    ("post", "/api/v1/codes/{code}/redeem/", {"user_id": "bob"}),
    ("get", "/api/v1/codes/{code}/validate/", {"user_id": "bob"}),
    ("get", "/api/v1/users/bob/codes/", None),
    ("get", "/api/v1/redemptions/", None),
    ("get", "/api/v1/redemptions/export/", None),
    ("post", "/api/v1/redemptions/{redemption}/reverse/", {"reason": "refund"}),
    ("get", "/api/v1/jobs/{job}/", None),
    ("get", "/api/v1/jobs/{job}/file/", None),
    ("get", "/api/v1/end-user-keys/", None),
    ("post", "/api/v1/end-user-keys/", {"name": "k", "algorithm": "HS256", "key": "k" * 40}),
    ("delete", "/api/v1/end-user-keys/{kid}/", None),
]
# What an end-user token may call (only for its own user id).
END_USER_ALLOWED = {"/lock/", "/unlock/", "/redeem/", "/validate/", "/users/"}


@pytest.fixture
def objects(tenant, signing_key):
    book = CouponBookFactory(tenant=tenant)
    code = CodeFactory(book=book, code="MATRIX-CODE", user_id="bob", state="assigned")
    redemption = RedemptionFactory(code=code, user_id="bob")
    job = Job.objects.create(tenant=tenant, kind=Job.Kind.EXPORT, actor_type="system", total=1)
    return {"book": book.pk, "code": code.code, "redemption": redemption.pk, "job": job.pk, "kid": signing_key.kid}


def call(client, method, path, body):
    if method == "get":
        return client.get(path, body or {})
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize(("method", "template", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_without_a_token_every_endpoint_answers_401(http, objects, method, template, body):
    response = call(http, method, template.format(**objects), body)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "template", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_with_a_forged_token_every_endpoint_answers_401(objects, method, template, body):
    from .conftest import bearer

    forged = bearer("eyJhbGciOiJIUzI1NiJ9.eyJjbGllbnRfaWQiOiJ4In0.c2lnbmF0dXJl")
    assert_error(call(forged, method, template.format(**objects), body), 401, "authentication_failed")


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [e for e in ENDPOINTS if not any(part in e[1] for part in END_USER_ALLOWED)],
    ids=[f"{m} {p}" for m, p, _ in ENDPOINTS if not any(part in p for part in END_USER_ALLOWED)],
)
def test_an_end_user_token_is_refused_outside_its_own_lifecycle_calls(end_user, objects, method, template, body):
    assert_error(call(end_user, method, template.format(**objects), body), 403, "permission_denied")


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [e for e in ENDPOINTS if "{" in e[1]],
    ids=[f"{m} {p}" for m, p, _ in ENDPOINTS if "{" in p],
)
def test_another_tenants_objects_answer_404(other_api, objects, method, template, body):
    response = call(other_api, method, template.format(**objects), body)
    error = assert_error(response, 404)
    assert error["code"].endswith("_not_found")


def test_another_tenants_lists_hold_nothing_of_ours(other_api, objects):
    assert other_api.get("/api/v1/books/").json()["results"] == []
    assert other_api.get("/api/v1/redemptions/").json()["results"] == []
    assert other_api.get("/api/v1/users/bob/codes/").json()["results"] == []


@pytest.mark.parametrize("path", ["/api/v1/codes/{code}/lock/", "/api/v1/codes/{code}/unlock/", "/api/v1/codes/{code}/redeem/"])
def test_an_end_user_naming_another_user_is_refused_403(end_user, objects, path):
    assert_error(end_user.post(path.format(**objects), {"user_id": "bob"}, format="json"), 403, "permission_denied")


def test_an_end_user_reaching_for_another_users_code_is_refused_403(end_user, objects):
    # The code is bob's; alice's own token (user id forced to alice) may not lock, redeem or validate it.
    code = objects["code"]
    assert_error(end_user.post(f"/api/v1/codes/{code}/lock/", {}, format="json"), 403, "code_not_assigned_to_user")
    assert_error(end_user.post(f"/api/v1/codes/{code}/redeem/", {}, format="json"), 403, "code_not_assigned_to_user")
    assert_error(end_user.get(f"/api/v1/codes/{code}/validate/"), 403, "code_not_assigned_to_user")
    assert_error(end_user.post(f"/api/v1/codes/{code}/unlock/", {}, format="json"), 403, "code_not_assigned_to_user")
    assert_error(end_user.get(f"/api/v1/codes/{code}/validate/", {"user_id": "bob"}), 403, "permission_denied")
    assert_error(end_user.get("/api/v1/users/bob/codes/"), 403, "permission_denied")


JUNK = "\u202e\U0001f4a5\ufffd\x00"
BAD_INPUTS = [
    (
        "post",
        "/api/v1/books/",
        [
            {},
            {"name": 5},
            {"name": "x" * 201},
            {"name": JUNK},
            {"name": "a", "discount_value": "1e400"},
            {"name": "a", "uses_per_code": 10**30},
            {"name": "a", "valid_from": "yesterday"},
            [],
        ],
    ),
    (
        "patch",
        "/api/v1/books/{book}/",
        [{"name": ""}, {"status": "gone"}, {"lock_ttl_seconds": "abc"}, {"product_ids": "p1"}, {"discount_value": 150}],
    ),
    (
        "post",
        "/api/v1/books/{book}/codes/generate/",
        [
            {},
            {"count": "many"},
            {"count": 10**20},
            {"count": 0},
            {"count": 2, "pattern": "#" * 65},
            {"count": 2, "pattern": JUNK},
            {"count": 11, "pattern": "AB#"},
        ],
    ),
    (
        "post",
        "/api/v1/books/{book}/codes/upload/",
        [{}, {"codes": "ABC"}, {"codes": [1, 2]}, {"codes": [JUNK]}, {"codes": []}, {"codes": ["x" * 300]}],
    ),
    (
        "post",
        "/api/v1/books/{book}/assign/",
        [{}, {"user_id": ""}, {"user_id": ["a"]}, {"user_id": "u" * 256}, {"user_id": JUNK}],
    ),
    ("post", "/api/v1/codes/{code}/assign/", [{}, {"user_id": 3.5}, {"user_id": "u" * 1000}]),
    (
        "post",
        "/api/v1/codes/{code}/lock/",
        [{}, {"user_id": "bob", "ttl_seconds": "forever"}, {"user_id": "bob", "ttl_seconds": 10**12}, {"user_id": JUNK}],
    ),
    ("post", "/api/v1/codes/{code}/unlock/", [{}, {"user_id": "bob", "token": "t" * 65}, {"user_id": {"a": 1}}]),
    (
        "post",
        "/api/v1/codes/{code}/redeem/",
        [
            {},
            {"user_id": "bob", "amount": "lots"},
            {"user_id": "bob", "amount": -1},
            {"user_id": "bob", "amount": "1e30"},
            {"user_id": "bob", "order_ref": "o" * 256},
            {"user_id": "bob", "product_id": JUNK},
        ],
    ),
    ("get", "/api/v1/codes/{code}/validate/", [{}, {"user_id": "bob", "amount": "NaN"}, {"user_id": JUNK}]),
    ("get", "/api/v1/users/{junk}/codes/", [{}, {"book": "abc"}]),
    ("get", "/api/v1/books/", [{"status": "gone"}, {"active_on": "soon"}, {"page": "x"}, {"page": 0}, {"search": JUNK}]),
    ("get", "/api/v1/books/{book}/codes/", [{"state": "lost"}, {"cursor": "garbage"}, {"user_id": JUNK}]),
    (
        "get",
        "/api/v1/redemptions/",
        [
            {"book": "abc"},
            {"from": "last week"},
            {"to": "2026-13-45"},
            {"reversed": "maybe"},
            {"book": 10**30},
            {"user_id": JUNK},
        ],
    ),
    ("get", "/api/v1/redemptions/export/", [{"from": "x"}]),
    ("post", "/api/v1/redemptions/{redemption}/reverse/", [{"reason": "r" * 1001}, {"reason": JUNK}]),
    (
        "post",
        "/api/v1/end-user-keys/",
        [
            {},
            {"name": "k", "algorithm": "none", "key": "k" * 40},
            {"name": "k", "algorithm": "HS256", "key": "short"},
            {"name": "k", "algorithm": "RS256", "key": "not a pem"},
        ],
    ),
]


@pytest.mark.parametrize(("method", "template", "bodies"), BAD_INPUTS, ids=[f"{m} {p}" for m, p, _ in BAD_INPUTS])
def test_bad_input_answers_400_json_and_changes_nothing(api, objects, method, template, bodies):
    from books.models import Code, CouponBook

    before = (CouponBook.objects.count(), Code.objects.count())
    path = template.format(junk="%E2%80%AE%00", **objects)
    for body in bodies:
        response = call(api, method, path, body)
        error = assert_error(response, 400)
        assert error["code"] in {
            "invalid_input",
            "invalid_pattern",
            "invalid_codes",
            "empty_upload",
            "pattern_space_too_small",
            "parse_error",
        }, (body, error)
    assert (CouponBook.objects.count(), Code.objects.count()) == before


@pytest.mark.parametrize("path", ["/api/v1/books/{big}/", "/api/v1/redemptions/{big}/reverse/", "/api/v1/jobs/{big}/"])
def test_huge_ids_answer_404_not_500(api, path):
    big = "9" * 40
    response = api.post(path.format(big=big), {}, format="json") if "reverse" in path else api.get(path.format(big=big))
    assert_error(response, 404)


@pytest.mark.parametrize("code", ["A" * 500, "%F0%9F%92%A5", "..", "x%20y"])
def test_junk_codes_in_the_path_answer_404(api, code):
    assert_error(api.get(f"/api/v1/codes/{code}/"), 404, "code_not_found")


def test_a_nul_byte_in_the_path_answers_400_before_routing(api):
    assert_error(api.get("/api/v1/codes/%00/"), 400, "invalid_input")


@pytest.mark.parametrize("template", sorted({p for _, p, _ in ENDPOINTS}))
def test_options_answers_json_on_every_endpoint(api, objects, template):
    response = api.options(template.format(**objects))
    assert response.status_code == 200
    assert response.json()["renders"] == ["application/json"]


@pytest.mark.parametrize("position", ["p=garbage&o=0", "p=9999999999999999999999999999&o=1", "p=%00", "p=-1", "r=1&p=2026-13-01"])
def test_forged_cursors_answer_400(api, objects, position):
    import base64

    cursor = base64.b64encode(position.encode()).decode()
    for path in ("/api/v1/redemptions/", f"/api/v1/books/{objects['book']}/codes/"):
        assert_error(api.get(path, {"cursor": cursor}), 400, "invalid_input")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/books/", {"active_on": "9999-12-31"}),
        ("/api/v1/books/", {"active_on": "0001-01-01"}),
        ("/api/v1/redemptions/", {"to": "9999-12-31"}),
        ("/api/v1/redemptions/", {"from": "0001-01-01"}),
        ("/api/v1/redemptions/", {"from": "0001-01-01T00:00:00+14:00"}),
        ("/api/v1/redemptions/export/", {"to": "9999-12-31T23:59:59-12:00"}),
    ],
)
def test_dates_at_the_calendars_ends_answer_400(api, path, query):
    assert_error(api.get(path, query), 400, "invalid_input")


@pytest.mark.parametrize("field", ["valid_from", "valid_until"])
def test_book_datetimes_at_the_calendars_ends_answer_400(api, field):
    for value in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"):
        assert_error(api.post("/api/v1/books/", {"name": "x", field: value}, format="json"), 400, "invalid_input")
