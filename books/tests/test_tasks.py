"""Lock expiry: lazy (an expired hold stops counting at once) and the idempotent Celery task that tidies up.

The last tests run the tasks in a real Celery worker (a thread of this process) through Redis, as production
does: the Redis of CELERY_BROKER_URL when it names one (CI), otherwise a private redis-server that the tests start
on a free loopback port and stop, so that they run on a contributor's machine too.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from books.models import Code, Event, Reservation
from books.patterns import pattern_parse
from books.selectors import code_validate
from books.services.code_creation import generation_request
from books.services.codes import code_assign, code_redeem, code_reserve
from books.tasks import expire_reservations
from core.actors import Actor
from core.exceptions import ApplicationError
from core.models import Job
from tests.factories import CodeFactory, CouponBookFactory, ReservationFactory

from .concurrency import run_concurrently

# Bound on waiting for the worker; only reached when the worker is broken, and then the test fails.
WORKER_WAIT_SECONDS = 20


def expire_now(reservation: Reservation) -> None:
    """Move a reservation's end into the past, as if its time had run out."""
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def expiry_events(reservation: Reservation) -> int:
    return Event.objects.filter(reservation=reservation, kind=Event.Kind.LOCK_EXPIRED).count()


# --- Lazy expiry ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_expired_reservation_stops_counting_at_once_without_the_task(tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=1, max_codes_per_user=None)
    CodeFactory(book=book, code="ONEUSE")
    held = code_reserve(tenant=tenant, code="ONEUSE", user_id="alice", actor=actor)
    with pytest.raises(ApplicationError) as refused:
        code_reserve(tenant=tenant, code="ONEUSE", user_id="bob", actor=actor)
    assert refused.value.code == "code_locked"

    expire_now(held)

    assert code_validate(tenant=tenant, code="ONEUSE", user_id="bob").valid
    taken = code_reserve(tenant=tenant, code="ONEUSE", user_id="bob", actor=actor)
    assert taken.status == Reservation.Status.ACTIVE
    held.refresh_from_db()
    assert held.status == Reservation.Status.ACTIVE  # the task has not run: the row is untouched, yet ignored
    assert expiry_events(held) == 0
    redemption = code_redeem(tenant=tenant, code="ONEUSE", user_id="bob", actor=actor, token=taken.token)
    assert redemption.user_id == "bob"


@pytest.mark.django_db
def test_an_expired_reservation_does_not_count_against_its_users_limit(tenant, actor):
    book = CouponBookFactory(tenant=tenant, max_redemptions_per_user=1)
    CodeFactory(book=book, code="MINE01")
    code_assign(tenant=tenant, code="MINE01", user_id="alice", actor=actor)
    held = code_reserve(tenant=tenant, code="MINE01", user_id="alice", actor=actor)
    expire_now(held)

    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code="MINE01", user_id="alice", actor=actor, token=held.token)
    assert refused.value.code == "reservation_expired"
    redemption = code_redeem(tenant=tenant, code="MINE01", user_id="alice", actor=actor)
    assert Code.objects.get(code="MINE01").redeemed_count == 1
    assert redemption.reservation is None


# --- The expiry task -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_expiry_task_run_twice_marks_an_expired_reservation_once_with_one_event(tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, uses_per_code=3, max_codes_per_user=None)
    CodeFactory(book=book, code="TRIO")
    expired = code_reserve(tenant=tenant, code="TRIO", user_id="alice", actor=actor)
    running = code_reserve(tenant=tenant, code="TRIO", user_id="bob", actor=actor)
    consumed = code_reserve(tenant=tenant, code="TRIO", user_id="carol", actor=actor)
    code_redeem(tenant=tenant, code="TRIO", user_id="carol", actor=actor, token=consumed.token)
    expire_now(expired)
    expire_now(consumed)  # already redeemed: past its time, but not "active", so not the task's business

    assert expire_reservations() == 1
    assert expire_reservations() == 0

    expired.refresh_from_db()
    assert expired.status == Reservation.Status.EXPIRED
    assert expired.ended_at is not None
    events = Event.objects.filter(reservation=expired, kind=Event.Kind.LOCK_EXPIRED)
    assert list(events.values_list("user_id", "actor_type", "code__code")) == [("alice", Actor.SYSTEM, "TRIO")]
    assert Event.objects.filter(book=book, kind=Event.Kind.LOCK_EXPIRED).count() == 1
    running.refresh_from_db()
    consumed.refresh_from_db()
    assert (running.status, running.ended_at) == (Reservation.Status.ACTIVE, None)
    assert consumed.status == Reservation.Status.CONSUMED


@pytest.mark.django_db
def test_the_expiry_task_does_nothing_when_nothing_has_expired(tenant):
    reservation = ReservationFactory(code__book=CouponBookFactory(tenant=tenant))

    assert expire_reservations() == 0

    reservation.refresh_from_db()
    assert reservation.status == Reservation.Status.ACTIVE
    assert not Event.objects.filter(kind=Event.Kind.LOCK_EXPIRED).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_expiry_runs_mark_each_reservation_once_with_one_event(tenant):
    book = CouponBookFactory(tenant=tenant)
    past = timezone.now() - timedelta(seconds=1)
    reservations = [ReservationFactory(code__book=book, user_id=f"user-{i}", expires_at=past) for i in range(60)]

    outcomes = run_concurrently([expire_reservations] * 4)

    assert sum(outcome.value for outcome in outcomes) == 60
    assert Reservation.objects.filter(book=book, status=Reservation.Status.EXPIRED).count() == 60
    for reservation in reservations:
        assert expiry_events(reservation) == 1
    assert Event.objects.filter(book=book, kind=Event.Kind.LOCK_EXPIRED).count() == 60
    assert expire_reservations() == 0


# --- A real worker through Redis -----------------------------------------------------------------------------


def wait_for(check) -> bool:
    deadline = time.monotonic() + WORKER_WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


@pytest.mark.celery_worker
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_expiry_task_runs_in_a_real_worker_through_redis(redis_worker, tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, max_codes_per_user=None)
    CodeFactory(book=book, code="WORKER1")
    held = code_reserve(tenant=tenant, code="WORKER1", user_id="alice", actor=actor)
    expire_now(held)

    expire_reservations.delay()

    assert wait_for(lambda: Reservation.objects.get(pk=held.pk).status == Reservation.Status.EXPIRED)
    assert expiry_events(held) == 1


@pytest.mark.celery_worker
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_generation_job_runs_in_a_real_worker_through_redis(redis_worker, settings, tenant, actor):
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 10}
    book = CouponBookFactory(tenant=tenant)

    job = generation_request(book=book, count=40, actor=actor, pattern="JOB-####-??")

    assert isinstance(job, Job)
    assert wait_for(lambda: Job.objects.get(pk=job.pk).is_finished)
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.error) == (Job.Status.SUCCEEDED, 40, 40, "")
    assert job.result["created"] == 40
    codes = list(Code.objects.filter(book=book).values_list("code", flat=True))
    pattern = pattern_parse("JOB-####-??")
    assert len(codes) == len(set(codes)) == 40
    assert all(pattern.matches(code) for code in codes)
    assert Event.objects.filter(book=book, kind=Event.Kind.GENERATED).count() == 1
