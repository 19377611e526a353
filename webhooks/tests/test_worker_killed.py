"""A Celery worker killed (SIGKILL) while the receiver holds its request: the delivery is still made, by another
worker, once the dead sender's lease has run out and the beat sweeper queues it again (at least once, the same
webhook-id both times). Real worker processes, started by the test, through the broker in CELERY_BROKER_URL."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from books.services.codes import code_reserve
from core.actors import Actor
from tests.factories import CodeFactory, CouponBookFactory
from webhooks.models import WebhookDelivery
from webhooks.services import deliveries_due
from webhooks.tasks import sweep_deliveries

from .conftest import verify

pytestmark = [pytest.mark.celery_worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 10  # the workers' lease: seconds, not a minute, yet longer than a loaded machine takes from arrival to the kill
WAIT_SECONDS = 90


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    host = quote(db["HOST"] or "127.0.0.1", safe="")  # a Unix socket directory (embedded PostgreSQL), encoded
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def _worker(log: Path, broker_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),  # the test database, where this test's rows are committed
        "CELERY_BROKER_URL": broker_url,
        "WEBHOOKS_LEASE_SECONDS": str(LEASE_SECONDS),
        "WEBHOOKS_ALLOW_INSECURE": "1",
    }
    celery = Path(sys.executable).with_name("celery")
    command = [str(celery), "-A", "coupons_site", "worker", "-P", "threads", "-c", "2", "-l", "INFO"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"killtest-{os.getpid()}-{log.stem}@%h"]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _wait_for(check) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_a_worker_killed_mid_send_still_delivers(tenant, endpoint, receiver, tmp_path, redis_broker_url, celery_broker_use):
    from coupons_site.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("needs a broker: CELERY_TASK_ALWAYS_EAGER is on")
    configured = (app.conf.broker_url, app.conf.broker_transport_options)
    celery_broker_use(app, redis_broker_url, {})
    app.control.purge()  # leftovers of an interrupted earlier run must not reach these workers
    book = CouponBookFactory(tenant=tenant, requires_assignment=False)
    CodeFactory(book=book, code="KILLED-1")
    receiver.hold = threading.Event()
    first = _worker(tmp_path / "first.log", redis_broker_url)
    second = None
    try:
        code_reserve(tenant=tenant, code="KILLED-1", user_id="alice", actor=Actor.system("test"))  # queues on commit
        assert receiver.arrived.wait(WAIT_SECONDS), (tmp_path / "first.log").read_text()[-3000:]

        _stop(first, signal.SIGKILL)  # mid-send: the receiver still holds the request

        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.attempt_log.count()) == ("pending", 1, 0)
        assert delivery.leased_until is not None
        held, receiver.hold = receiver.hold, None
        held.set()  # the dead worker's request ends; nobody records its answer

        second = _worker(tmp_path / "second.log", redis_broker_url)
        assert _wait_for(lambda: delivery.pk in deliveries_due(now=timezone.now()))  # the dead sender's lease ran out
        sweep_deliveries.delay()  # what beat does every few seconds
        assert _wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "succeeded"), (
            tmp_path / "second.log"
        ).read_text()[-3000:]
    finally:
        _stop(first, signal.SIGKILL)
        if second is not None:
            _stop(second)
        app.control.purge()
        celery_broker_use(app, *configured)

    delivery.refresh_from_db()
    assert delivery.attempts == 2 and [a.status_code for a in delivery.attempt_log.all()] == [200]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.message_id] * 2
    body = verify(receiver.requests[-1], endpoint.secret)
    assert body["type"] == "code.locked" and body["data"]["code"] == "KILLED-1"
