"""Fixtures of the webhook tests: a real HTTP receiver on 127.0.0.1 (a free port), endpoints, verification."""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from webhooks.services import webhook_endpoint_create


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What a tenant's system would run: records every request; answers the queued statuses, then 200."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    answer: bytes = b'{"ok": true}'
    redirect_to: str = ""
    # Set to make the receiver hold each request until released (a send in flight).
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.requests if r.json["type"] == event_type]


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            with receiver.lock:
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            receiver.arrived.set()
            if receiver.hold is not None:
                receiver.hold.wait(60)
            self.send_response(302 if receiver.redirect_to else status)
            if receiver.redirect_to:
                self.send_header("Location", receiver.redirect_to)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(receiver.answer)))
            self.end_headers()
            try:
                self.wfile.write(receiver.answer)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture(autouse=True)
def local_receivers_allowed(settings):
    """The receivers of these tests listen on 127.0.0.1 over plain http, whatever DJANGO_DEBUG says; the tests of
    the refusal turn the setting off themselves."""
    settings.COUPONS = {**settings.COUPONS, "WEBHOOKS_ALLOW_INSECURE": True}


@pytest.fixture
def receiver():
    box = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(box))
    server.daemon_threads = True
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    if box.hold is not None:
        box.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def endpoint(tenant, receiver):
    from webhooks.models import EVENT_TYPES

    return webhook_endpoint_create(tenant=tenant, url=receiver.url, events=list(EVENT_TYPES))


def verify(received: Received, secret: str) -> dict:
    """Verify as the tenant's receiver would, with the reference implementation; returns the parsed body."""
    return Webhook(secret).verify(received.body, received.headers)


@pytest.fixture
def eager_celery():
    """Celery tasks run in the calling process (queued on commit, as in production)."""
    from coupons_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def wakes(monkeypatch):
    """Catches the Celery wake-ups queued on commit (instead of sending them to the broker)."""
    woken: list[list[int]] = []
    monkeypatch.setattr("webhooks.services.deliveries_wake", lambda ids: woken.append(list(ids)))
    return woken
