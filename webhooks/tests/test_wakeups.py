"""The Celery wake-ups of new deliveries: published by a background thread, each id once; a broker failure never
reaches the caller (the committed rows wait for the sweeper)."""

import logging
import time

from webhooks import wakeups


def test_wake_ups_are_published_off_the_callers_thread_each_id_once(monkeypatch):
    published: list[list[int]] = []
    monkeypatch.setattr(wakeups, "publish", lambda ids: published.append(list(ids)))
    monkeypatch.setattr(wakeups, "_publisher", wakeups._Publisher())

    wakeups.wake([1])
    wakeups.wake([2, 3])

    deadline = time.monotonic() + 10
    while sum(len(batch) for batch in published) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(pk for batch in published for pk in batch) == [1, 2, 3]


def test_a_broker_that_refuses_the_message_does_not_raise(monkeypatch, caplog):
    from webhooks.tasks import deliver

    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(deliver, "apply_async", refuse)
    # A Celery worker started by an earlier test may have disabled the existing loggers: this one must speak.
    monkeypatch.setattr(wakeups.logger, "disabled", False)
    with caplog.at_level(logging.WARNING, logger=wakeups.logger.name):
        wakeups.publish([7])
    assert "the sweeper will send them" in caplog.text
