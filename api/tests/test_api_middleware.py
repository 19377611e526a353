"""The WSGI application that gunicorn serves (coupons_site.wsgi) runs the API's paths through
settings.API_MIDDLEWARE, without the middleware only the browser pages need: the answers are the same as through
the full list, and the admin keeps its sessions, CSRF and sign-in lockout."""

import io
import json

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from coupons_site.wsgi import application

from .conftest import end_user_token

# Headers that may differ between two answers to the same request.
VOLATILE = {"date"}


def _environ(method: str, path: str, body: bytes = b"", **headers: str) -> dict:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }


def _call(app, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, list[tuple[str, str]], bytes]:
    started = []
    result = app(
        _environ(method, path, body, **headers), lambda status, headers, exc_info=None: started.append((status, headers))
    )
    content = b"".join(result)
    getattr(result, "close", lambda: None)()
    status, answer_headers = started[0]
    return status, sorted((name.lower(), value) for name, value in answer_headers if name.lower() not in VOLATILE), content


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Real WSGI handlers close the database connection around each request; the test's transaction needs it open
    (Django's test client does the same)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def full_stack():
    """The handler with every middleware of settings.MIDDLEWARE, as before the split."""
    return WSGIHandler()


def test_the_api_runs_without_the_browser_middleware():
    assert settings.API_MIDDLEWARE
    assert not set(settings.API_MIDDLEWARE) & set(settings.BROWSER_ONLY_MIDDLEWARE)
    assert [name for name in settings.MIDDLEWARE if name in settings.API_MIDDLEWARE] == settings.API_MIDDLEWARE


@pytest.mark.django_db
def test_api_answers_are_the_same_as_through_the_full_middleware(api, issued, active_book, full_stack, signing_key):
    from tests.factories import CodeFactory

    CodeFactory(book=active_book, code="SAME0001")
    CodeFactory(book=active_book, code="SAME0002")
    token = api._credentials["HTTP_AUTHORIZATION"]
    user_token = f"Bearer {end_user_token(signing_key, 'alice')}"
    requests = [
        ("GET", "/api/v1/books/", b"", {"authorization": token}),
        ("GET", "/api/v1/books/", b"", {}),  # 401
        ("GET", "/api/v1/books/", b"", {"authorization": user_token}),  # 403
        ("GET", "/api/v1/no-such-thing/", b"", {"authorization": token}),  # 404 JSON
        ("POST", "/api/v1/codes/NOPE/lock/", b"{", {"authorization": token}),  # 400 parse error
        ("GET", "/api/v1/codes/SAME0001/", b"", {"authorization": token, "accept": "text/html"}),  # 406
    ]
    for method, path, body, headers in requests:
        assert _call(application, method, path, body, **headers) == _call(full_stack, method, path, body, **headers), path
    # A write, with an Idempotency-Key: each stack assigns its own code, with the same headers.
    answers = []
    for app, code, user in ((application, "SAME0001", "bob-1"), (full_stack, "SAME0002", "bob-2")):
        body = json.dumps({"user_id": user}).encode()
        status, headers, content = _call(
            app, "POST", f"/api/v1/codes/{code}/assign/", body, authorization=token, idempotency_key=user
        )
        answers.append((status, headers, json.loads(content)["state"]))
    assert answers[0] == answers[1]
    assert answers[0][0].startswith("200")


@pytest.mark.django_db
def test_the_admin_keeps_its_middleware():
    status, headers, _ = _call(application, "GET", "/admin/login/")
    assert status.startswith("200")
    cookies = [value for name, value in headers if name == "set-cookie"]
    assert any(value.strip().startswith("csrftoken=") for value in cookies)
    assert ("x-frame-options", "DENY") in headers
