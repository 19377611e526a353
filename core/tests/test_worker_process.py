"""Every kind of background work runs in a real Celery worker *process* through the Redis broker, as in production.

The worker is `celery -A coupons_site worker` started as a subprocess against the test database (DATABASE_URL is
pointed at it) and a shared media folder; the test process only enqueues (through the services, on commit) and
then reads the results from the database and the files. Generation, upload and export jobs, reservation expiry and
the idempotency-key purge are each run once.
"""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from openpyxl import load_workbook

from api.models import IdempotencyKey
from api.tasks import purge_idempotency_keys
from books.models import Code, Reservation
from books.services.code_creation import generation_request, upload_request
from books.services.codes import code_reserve
from books.tasks import expire_reservations
from core.models import Job
from redemptions.exports import DATA_SHEET, export_request
from redemptions.models import Redemption
from tests.factories import CodeFactory, CouponBookFactory, RedemptionFactory

ROOT = Path(__file__).resolve().parents[2]
# Bound on waiting for the worker (its start included); only reached when it is broken, and then the test fails.
WAIT_SECONDS = 90

pytestmark = [pytest.mark.celery_worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    """The test database as a DATABASE_URL; a Unix socket directory as host is percent-encoded (dj-database-url)."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = quote(db["HOST"] or "127.0.0.1", safe="")
    return f"postgres://{quote(db['USER'], safe='')}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def worker_process(django_db_setup, tmp_path_factory, redis_broker_url, celery_broker_use):
    """A Celery worker process on the test database and the Redis broker (CI's, or a private one); its log is
    printed when a test fails."""
    from coupons_site.celery import app

    configured = (app.conf.broker_url, app.conf.broker_transport_options)
    celery_broker_use(app, redis_broker_url, {})
    media = tmp_path_factory.mktemp("media")
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DB_CONN_MAX_AGE": "0",  # no connection outlives a task: the test database can be dropped at the end
        "DJANGO_MEDIA_ROOT": str(media),
        "PYTHONUNBUFFERED": "1",
        "CELERY_BROKER_URL": redis_broker_url,
    }
    app.control.purge()  # leftovers of an interrupted earlier run must not reach this worker
    name = f"test-{os.getpid()}@localhost"
    command = [sys.executable, "-m", "celery", "-A", "coupons_site", "worker", "-n", name, "--pool", "solo"]
    command += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not app.control.ping(destination=[name], timeout=1):
            assert process.poll() is None, f"the worker exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the worker did not answer a ping: {log.read_text()[-3000:]}"
        yield {"media": media, "log": log, "pid": process.pid}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        celery_broker_use(app, *configured)


@pytest.fixture
def shared_media(worker_process, settings):
    """The test process writes and reads files where the worker does."""
    settings.MEDIA_ROOT = str(worker_process["media"])
    return worker_process


def wait_for(check, worker) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"the worker did not finish in time: {worker['log'].read_text()[-3000:]}"
        time.sleep(0.2)


def job_done(job: Job, worker) -> Job:
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, worker)
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.SUCCEEDED, ""), worker["log"].read_text()[-3000:]
    return job


def test_a_generation_job_runs_in_a_worker_process(shared_media, settings, tenant, actor):
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 10}
    book = CouponBookFactory(tenant=tenant)

    job = job_done(generation_request(book=book, count=300, actor=actor, pattern="PROC-######"), shared_media)

    assert (job.kind, job.done, job.total, job.result["created"]) == (Job.Kind.GENERATE, 300, 300, 300)
    assert Code.objects.filter(book=book, state=Code.State.FREE).count() == 300


def test_an_upload_job_runs_in_a_worker_process(shared_media, settings, tenant, actor):
    settings.COUPONS = {**settings.COUPONS, "SYNC_CODES_LIMIT": 10}
    book = CouponBookFactory(tenant=tenant)
    codes = [f"UPL-{n:05d}" for n in range(250)]

    job = upload_request(book=book, codes=codes, actor=actor)
    assert isinstance(job, Job)  # the list went to the job's file, read back by the worker process
    job = job_done(job, shared_media)

    assert (job.kind, job.result["created"]) == (Job.Kind.UPLOAD, 250)
    assert sorted(Code.objects.filter(book=book).values_list("code", flat=True)) == codes


def test_an_export_job_runs_in_a_worker_process(shared_media, settings, tenant, actor):
    settings.COUPONS = {**settings.COUPONS, "EXPORT_SYNC_ROWS": 5}
    book = CouponBookFactory(tenant=tenant, uses_per_code=None, max_redemptions_per_user=None)
    code = CodeFactory(book=book, code="EXPORTED", max_uses=None, redeemed_count=30)
    RedemptionFactory.create_batch(30, code=code)

    job = export_request(tenant=tenant, queryset=Redemption.objects.all(), actor=actor)
    assert isinstance(job, Job)
    job = job_done(job, shared_media)

    assert (job.kind, job.result["rows"]) == (Job.Kind.EXPORT, 30)
    with job.file.open("rb") as handle:
        sheet = load_workbook(handle, read_only=True)[DATA_SHEET]
        rows = list(sheet.iter_rows(values_only=True))
    assert sum(1 for row in rows if "EXPORTED" in row) == 30


def test_reservation_expiry_runs_in_a_worker_process(worker_process, tenant, actor):
    book = CouponBookFactory(tenant=tenant, requires_assignment=False, max_codes_per_user=None)
    CodeFactory(book=book, code="PROCLOCK")
    held = code_reserve(tenant=tenant, code="PROCLOCK", user_id="alice", actor=actor)
    Reservation.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    expire_reservations.delay()

    wait_for(lambda: Reservation.objects.get(pk=held.pk).status == Reservation.Status.EXPIRED, worker_process)


def test_the_idempotency_key_purge_runs_in_a_worker_process(worker_process, settings, tenant):
    def key(name: str) -> IdempotencyKey:
        return IdempotencyKey.objects.create(
            tenant=tenant, principal="client:x", key=name, fingerprint="f" * 64, method="POST", path="/api/v1/books/"
        )

    old, fresh = key("old"), key("fresh")
    retention = timedelta(hours=django_settings.COUPONS["API_IDEMPOTENCY_KEY_HOURS"])
    IdempotencyKey.objects.filter(pk=old.pk).update(created_at=timezone.now() - retention - timedelta(minutes=1))

    purge_idempotency_keys.delay()

    wait_for(lambda: not IdempotencyKey.objects.filter(pk=old.pk).exists(), worker_process)
    assert IdempotencyKey.objects.filter(pk=fresh.pk).exists()
