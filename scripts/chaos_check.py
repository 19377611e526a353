"""`make chaos`: SPEC's reliability contract shown by killing the real processes, under traffic.

Everything it kills is its own (scripts/private_services.py): two private redis-servers on free loopback ports
(one the cache, one the broker, both without persistence, so a restart starts empty), gunicorn, two Celery
workers and beat, against a private PostgreSQL cluster (never stopped here; the scale check does that).
Lifecycle traffic (assign, lock, redeem or unlock, validate) runs from start to end.

1. The cache is lost: its redis-server is killed (SIGKILL) for a while, then started again, empty. The lifecycle
   must keep answering (no 5xx at all), /healthz must say "cache unavailable" with a 200, then "ok" again
   without any restart.
2. The broker is lost: its redis-server is killed; generation, upload and export requests large enough to be
   jobs are sent while it is down (202 with a durable job, or a 503 JSON that leaves nothing); it is started
   again empty. Every accepted job must end.
3. A worker is lost: a large generation starts; once it is running, the whole worker that runs it (main
   process and pool) is killed with SIGKILL, and a fresh worker is started. The job must be taken back and end
   succeeded with exactly its count of codes (all or nothing, never twice).

Then, from the database: every accepted job ended (succeeded, or failed with its error) within the deadline,
each job's effect is whole, and the invariants of scripts/invariants.py hold; from the answers: no 5xx other
than a 503 JSON error, and none during the cache outage. Exit status 1 when anything breaks.

Sizes and times: CHAOS_BIG_CODES (600,000 codes, as in the issue), CHAOS_CLIENTS (6), CHAOS_JOB_DEADLINE (180 s).
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from check_stack import (
    LOCK_TTL,
    ROOT,
    TIMEOUT,
    Answer,
    api_call,
    beat_command,
    by_endpoint,
    database_prepare,
    gunicorn_command,
    is_json_error,
    log,
    stack_env,
    web_wait,
    worker_command,
)
from invariants import invariants_broken
from private_services import PrivatePostgres, PrivateRedis, free_port

DB_NAME = "coupons_chaos"
BIG_CODES = int(os.environ.get("CHAOS_BIG_CODES", "600000"))
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "6"))
JOB_DEADLINE = float(os.environ.get("CHAOS_JOB_DEADLINE", "180"))
CACHE_OUTAGE = 8.0
BROKER_OUTAGE = 8.0
JOB_CODES = 12_000  # above the 10,000 codes a request handles at once: a job
EXPORT_SYNC_ROWS = 50  # exports above this many rows become jobs in this run
# Short lease and sweep so the check takes minutes, not the production defaults' 90 s per lost worker.
LEASE, SWEEP, RESEND = 12, 4, 10


class Stack:
    """gunicorn, Celery workers and beat, started and killed by this script only."""

    def __init__(self, env: dict, logs: Path) -> None:
        self.env, self.logs = env, logs
        self.web_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.worker_count = 0

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "w")  # closed with the process
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def start_web(self) -> None:
        self._start("gunicorn", gunicorn_command(self.web_port))
        if not web_wait(self.web_port):
            raise SystemExit("gunicorn did not come up; see the logs")

    def start_worker(self) -> str:
        self.worker_count += 1
        name = f"worker{self.worker_count}"
        self._start(name, worker_command(name, "--without-mingle", "--without-gossip"))
        return name

    def start_beat(self) -> None:
        self._start("beat", beat_command(self.logs / "celerybeat-schedule"))

    def worker_of(self, pid: int) -> str | None:
        """The name of our worker whose process group holds `pid` (a pool process of that worker)."""
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        for name, process in self.processes.items():
            if name.startswith("worker") and process.pid == group and process.poll() is None:
                return name
        return None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in self.processes:
            self.kill(name, signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(name)
                process.wait()


@dataclass
class Client:
    port: int
    token: str = ""
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, method: str, path: str, endpoint: str, payload: object = None, record: bool = True) -> Answer:
        answer = api_call(self.port, method, path, endpoint, token=self.token, payload=payload)
        if record:
            with self.lock:
                self.answers.append(answer)
        return answer


class Traffic:
    """Clients running the coupon lifecycle on a book of unique codes until told to stop."""

    def __init__(self, client: Client, book_id: int) -> None:
        self.client, self.book_id = client, book_id
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _run(self, index: int) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            user = f"user-{index}-{n}"
            call = self.client.call
            assigned = call("POST", f"/api/v1/books/{self.book_id}/assign/", "assign", {"user_id": user})
            if assigned.status == 201:
                code = assigned.body["code"]
                call("GET", f"/api/v1/codes/{code}/validate/?user_id={user}&amount=20&currency=EUR", "validate")
                locked = call("POST", f"/api/v1/codes/{code}/lock/", "lock", {"user_id": user, "ttl_seconds": LOCK_TTL})
                if locked.status == 201:
                    token = locked.body["token"]
                    if random.random() < 0.7:
                        call(
                            "POST",
                            f"/api/v1/codes/{code}/redeem/",
                            "redeem",
                            {"user_id": user, "token": token, "amount": "20", "currency": "EUR"},
                        )
                    else:
                        call("POST", f"/api/v1/codes/{code}/unlock/", "unlock", {"user_id": user, "token": token})
            time.sleep(0.02)


@dataclass
class AcceptedJob:
    id: int
    kind: str
    book_id: int | None
    expected: int  # codes the book must hold when the job succeeded (generation, upload), rows (export)
    phase: str


class ChaosCheck:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="coupons-chaos-"))
        self.logs = ROOT / "var" / "chaos-check"
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.postgres = PrivatePostgres()
        self.cache = PrivateRedis()
        self.broker = PrivateRedis()
        # Throttling stays on (its counters are in the cache being killed), with rates the clients never reach.
        self.env = stack_env(
            DATABASE_URL=f"{self.postgres.url}/{DB_NAME}",
            REDIS_URL=self.cache.url(0),
            CELERY_BROKER_URL=self.broker.url(0),
            DJANGO_MEDIA_ROOT=str(self.workdir / "media"),
            COUPONS_VAR_DIR=str(self.workdir / "var"),
            COUPONS_JOB_LEASE_SECONDS=str(LEASE),
            COUPONS_JOB_SWEEP_INTERVAL=str(SWEEP),
            COUPONS_JOB_RESEND_SECONDS=str(RESEND),
            COUPONS_EXPORT_SYNC_ROWS=str(EXPORT_SYNC_ROWS),
        )
        self.stack = Stack(self.env, self.logs)
        self.client: Client | None = None
        self.jobs: list[AcceptedJob] = []
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.windows: dict[str, tuple[float, float]] = {}

    # --- set-up --------------------------------------------------------------------------------------------

    def prepare(self) -> dict:
        self.postgres.start()
        return database_prepare(self.postgres.url, DB_NAME, self.env, tenant="chaos", title="Chaos check")

    def book(self, name: str) -> int:
        body = {"name": name, "status": "active", "discount_type": "percent", "discount_value": "10"}
        answer = self.client.call(
            "POST", "/api/v1/books/", "setup", {**body, "max_codes_per_user": 1, "lock_ttl_seconds": LOCK_TTL}
        )
        assert answer.status == 201, answer
        return answer.body["id"]

    def healthz(self) -> tuple[int, object]:
        answer = self.client.call("GET", "/healthz", "healthz", record=False)
        return answer.status, answer.body

    def db(self):
        import psycopg

        return psycopg.connect(f"{self.postgres.url}/{DB_NAME}", autocommit=True)

    # --- job requests --------------------------------------------------------------------------------------

    def accept(self, answer: Answer, kind: str, book_id: int | None, expected: int, phase: str) -> None:
        """A job request's answer: 202 with a job (kept), 201 at once, or a 503 JSON that must leave nothing."""
        log(f"{phase}: {kind} request answered {answer.status} in {answer.seconds:.2f} s")
        if answer.status == 202:
            self.jobs.append(AcceptedJob(answer.body["id"], kind, book_id, expected, phase))
        elif answer.status == 503:
            self.notes.append(f"{phase}: a {kind} request answered 503 (allowed: it must leave nothing)")
            if book_id is not None:
                with self.db() as conn:
                    if conn.execute("SELECT count(*) FROM books_code WHERE book_id = %s", [book_id]).fetchone()[0]:
                        self.problems.append(f"{phase}: a {kind} request answered 503 but left codes behind")
        else:
            self.problems.append(f"{phase}: a {kind} request answered {answer.status}: {str(answer.body)[:300]}")

    def request_generation(self, book_id: int, count: int, phase: str) -> Answer:
        answer = self.client.call("POST", f"/api/v1/books/{book_id}/codes/generate/", "generate", {"count": count})
        self.accept(answer, "generate", book_id, count, phase)
        return answer

    def request_upload(self, book_id: int, phase: str) -> None:
        prefix = f"UP{random.randrange(10**6):06d}-"
        codes = [f"{prefix}{i:06d}" for i in range(JOB_CODES)]
        answer = self.client.call("POST", f"/api/v1/books/{book_id}/codes/upload/", "upload", {"codes": codes})
        self.accept(answer, "upload", book_id, JOB_CODES, phase)

    def request_export(self, phase: str) -> None:
        answer = self.client.call("GET", "/api/v1/redemptions/export/", "export")
        if answer.status == 200 and answer.body is None:  # the workbook itself: too few rows for a job
            self.notes.append(f"{phase}: the export was small enough to answer at once")
            return
        self.accept(answer, "export", None, 0, phase)

    # --- the three losses ----------------------------------------------------------------------------------

    def expect_unavailable(self, dependency: str) -> None:
        """/healthz, with `dependency` down, must answer 200 and name it unavailable."""
        status, body = self.healthz()
        log(f"/healthz with the {dependency} down: {status} {body}")
        if status != 200 or not isinstance(body, dict) or body.get(dependency) != "unavailable":
            self.problems.append(
                f"/healthz with the {dependency} down answered {status} {body}, not 200 with {dependency} unavailable"
            )

    def lose_the_cache(self) -> None:
        log(f"killing the cache (redis-server :{self.cache.port}) for {CACHE_OUTAGE:.0f} s")
        started = time.time()
        self.cache.kill()
        time.sleep(1)
        self.expect_unavailable("cache")
        time.sleep(CACHE_OUTAGE - 1)
        self.windows["cache outage"] = (started, time.time())
        self.cache.start()
        log("cache started again, empty")
        self.expect_recovery("cache")

    def lose_the_broker(self, books: dict[str, int]) -> None:
        log(f"killing the broker (redis-server :{self.broker.port}); sending job requests while it is down")
        started = time.time()
        self.broker.kill()
        time.sleep(0.5)
        self.expect_unavailable("broker")
        self.request_generation(books["broker-generate"], JOB_CODES, "broker outage")
        self.request_upload(books["broker-upload"], "broker outage")
        self.request_export("broker outage")
        time.sleep(max(0.0, BROKER_OUTAGE - (time.time() - started)))
        self.windows["broker outage"] = (started, time.time())
        self.broker.start()
        log("broker started again, empty")
        self.expect_recovery("broker")

    def lose_a_worker(self, book_id: int) -> None:
        log(f"asking for {BIG_CODES:,} codes; the worker that runs them will be killed mid-job")
        answer = self.request_generation(book_id, BIG_CODES, "worker loss")
        if answer.status != 202:
            return
        job_id = answer.body["id"]
        deadline = time.time() + 120
        victim, done = None, 0
        with self.db() as conn:
            while time.time() < deadline:
                status, worker = conn.execute("SELECT status, worker FROM core_job WHERE id = %s", [job_id]).fetchone()
                if status == "running" and worker:
                    progress = self.client.call("GET", f"/api/v1/jobs/{job_id}/", "job", record=False)
                    done = (progress.body or {}).get("done", 0)
                    if done > 0:  # well inside the work: codes are being written
                        victim = self.stack.worker_of(int(worker.rsplit(":", 1)[1]))
                        break
                if status in ("succeeded", "failed"):
                    self.problems.append(
                        f"the large job ended ({status}) before the worker could be killed: raise CHAOS_BIG_CODES"
                    )
                    return
                time.sleep(0.2)
        if victim is None:
            self.problems.append("the large job never started running on one of this check's workers")
            return
        self.stack.kill(victim)
        self.windows["worker loss"] = (time.time(), time.time())
        log(f"killed {victim} (SIGKILL, main process and pool) at {done:,} of {BIG_CODES:,} codes")
        fresh = self.stack.start_worker()
        log(f"started {fresh}")

    def expect_recovery(self, dependency: str) -> None:
        deadline = time.time() + 15
        while time.time() < deadline:
            status, body = self.healthz()
            if status == 200 and isinstance(body, dict) and body.get(dependency) == "ok":
                log(f"/healthz reports the {dependency} ok again, no restart")
                return
            time.sleep(0.5)
        self.problems.append(f"/healthz did not report the {dependency} ok again within 15 s of its return")

    # --- the verdict ---------------------------------------------------------------------------------------

    def wait_for_jobs(self) -> None:
        ids = [job.id for job in self.jobs]
        log(f"waiting for the {len(ids)} accepted job(s) to end (at most {JOB_DEADLINE:.0f} s)")
        deadline = time.time() + JOB_DEADLINE
        with self.db() as conn:
            while time.time() < deadline:
                left = conn.execute(
                    "SELECT count(*) FROM core_job WHERE id = ANY(%s) AND status NOT IN ('succeeded', 'failed')", [ids]
                ).fetchone()[0]
                if not left:
                    return
                time.sleep(1)
            rows = conn.execute("SELECT id, kind, status, attempts, error FROM core_job WHERE id = ANY(%s)", [ids]).fetchall()
        for row in rows:
            if row[2] not in ("succeeded", "failed"):
                self.problems.append(f"job {row[0]} ({row[1]}) still {row[2]} after {JOB_DEADLINE:.0f} s (attempts {row[3]})")

    def check_jobs(self, conn) -> None:
        for job in self.jobs:
            status, attempts, error, result, done, total = conn.execute(
                "SELECT status, attempts, error, result, done, total FROM core_job WHERE id = %s", [job.id]
            ).fetchone()
            line = f"- job {job.id} ({job.kind}, {job.phase}): {status} after {attempts} run(s)"
            if status == "failed":
                line += f": {error[:160]}"
                if not error:
                    self.problems.append(f"job {job.id} failed without its error")
            if job.book_id is not None:
                codes = conn.execute("SELECT count(*) FROM books_code WHERE book_id = %s", [job.book_id]).fetchone()[0]
                events = conn.execute(
                    "SELECT count(*) FROM books_event WHERE book_id = %s AND kind IN ('generated', 'uploaded')", [job.book_id]
                ).fetchone()[0]
                line += f"; the book holds {codes:,} codes, {events} batch event(s)"
                whole = (codes, events) == ((job.expected, 1) if status == "succeeded" else (0, 0))
                if not whole:
                    self.problems.append(
                        f"job {job.id} ({job.kind}) {status}: its book holds {codes:,} codes and {events} batch events"
                    )
            elif status == "succeeded":
                # The export's rows are read when the job runs: the redemptions made since the request count too.
                line += f"; {result.get('rows', 0):,} rows exported ({total:,} when it was asked for)"
                if (result.get("rows") or 0) < total:
                    self.problems.append(f"export job {job.id} wrote {result.get('rows')} rows, fewer than the {total} asked for")
            print(line)
        if "worker loss" in self.windows:
            big = [job for job in self.jobs if job.phase == "worker loss"]
            attempts, finished = conn.execute(
                "SELECT attempts, extract(epoch FROM finished_at) FROM core_job WHERE id = %s", [big[0].id]
            ).fetchone()
            if attempts < 2:
                self.problems.append("the large job ran once only: the worker was not killed while it ran")
            if finished is not None:
                killed = self.windows["worker loss"][0]
                print(
                    f"- the killed job ended {float(finished) - killed:.0f} s after its worker was killed (lease {LEASE} s, sweep every {SWEEP} s)"
                )

    def check_answers(self) -> None:
        answers = self.client.answers
        bad = [a for a in answers if a.status >= 500 and not (a.status == 503 and is_json_error(a.body))]
        hangs = [a for a in answers if a.status == 0]
        if bad:
            where = {}
            for a in bad:
                where[a.endpoint] = where.get(a.endpoint, 0) + 1
            self.problems.append(f"{len(bad)} answer(s) were a 5xx other than a 503 JSON error {where}, e.g. {bad[0]}")
        if hangs:
            self.problems.append(f"{len(hangs)} request(s) got no answer within {TIMEOUT} s, e.g. {hangs[0]}")
        start, end = self.windows.get("cache outage", (0, 0))
        during = [a for a in answers if start <= a.at <= end and a.endpoint in LIFECYCLE]
        served = [a for a in during if 200 <= a.status < 300]
        failed = [a for a in during if a.status >= 500]
        if failed:
            self.problems.append(f"{len(failed)} lifecycle answer(s) during the cache outage were 5xx: the cache is not optional")
        if not served:
            self.problems.append("no lifecycle call succeeded during the cache outage")
        print("\nChaos check summary")
        print(f"- traffic: {CLIENTS} clients, {len(answers):,} requests")
        for phase, (start, end) in self.windows.items():
            if phase == "worker loss":
                continue
            window = [a for a in answers if start <= a.at <= end + 0.001]
            counts = _counts(window)
            print(f"- {phase}: {end - start:.1f} s, {len(window):,} requests: {counts}")
            if phase == "cache outage":
                before = [a for a in answers if a.at < start and a.endpoint in LIFECYCLE]
                print(f"  lifecycle p50 {_p50(window)} while the cache was away, {_p50(before)} before")
        for endpoint, statuses in sorted(by_endpoint(answers).items()):
            print(f"- {endpoint}: " + ", ".join(f"{status or 'no answer'}: {n:,}" for status, n in sorted(statuses.items())))

    def run(self) -> int:
        try:
            self.drive()
            self.check_answers()
            print("\nJobs accepted during the run")
            with self.db() as conn:
                self.check_jobs(conn)
                self.problems.extend(invariants_broken(conn))
        finally:
            self.cache.destroy()
            self.broker.destroy()
            self.postgres.destroy()
            shutil.rmtree(self.workdir, ignore_errors=True)
        for note in self.notes:
            print(f"- note: {note}")
        if self.problems:
            print(f"\nCONTRACT BROKEN (logs in {self.logs}):")
            for problem in self.problems:
                print(f"- {problem}")
            return 1
        print(
            "\nThe reliability contract held: no 5xx but 503 JSON, the lifecycle served without the cache, every job ended whole."
        )
        return 0

    def drive(self) -> None:
        """The stack up, the traffic on, the three losses, the wait for the jobs; the stack down again."""
        try:
            log(f"private redis-servers: cache :{self.cache.port}, broker :{self.broker.port}; PostgreSQL :{self.postgres.port}")
            credentials = self.prepare()
            self.stack.start_web()
            self.stack.start_worker()
            self.stack.start_worker()
            self.stack.start_beat()
            self.client = Client(self.stack.web_port)
            token = self.client.call(
                "POST",
                "/api/v1/auth/token/",
                "setup",
                {"client_id": credentials["client_id"], "client_secret": credentials["client_secret"]},
            )
            if token.status != 200:
                raise SystemExit(f"no API token: {token.status} {token.body}; see {self.logs}")
            self.client.token = token.body["access"]
            lifecycle_book = self.book("Lifecycle")
            seeded = self.client.call("POST", f"/api/v1/books/{lifecycle_book}/codes/generate/", "setup", {"count": 8000})
            assert seeded.status == 201, seeded
            books = {name: self.book(name) for name in ("broker-generate", "broker-upload", "worker-loss")}
            traffic = Traffic(self.client, lifecycle_book)
            log(f"driving {CLIENTS} clients through assign, validate, lock, redeem or unlock")
            traffic.start()
            try:
                time.sleep(8)
                self.lose_the_cache()
                time.sleep(4)
                self.lose_the_broker(books)
                time.sleep(3)
                self.lose_a_worker(books["worker-loss"])
                time.sleep(5)
            finally:
                traffic.stop()
            log("traffic stopped")
            self.wait_for_jobs()
            time.sleep(LOCK_TTL + 2 * int(self.env["COUPONS_EXPIRY_INTERVAL"]) + 2)  # beat marks the last holds expired
        finally:
            self.stack.stop_all()


LIFECYCLE = {"assign", "validate", "lock", "redeem", "unlock"}


def _p50(answers: list[Answer]) -> str:
    seconds = sorted(a.seconds for a in answers if a.endpoint in LIFECYCLE)
    return f"{1000 * seconds[len(seconds) // 2]:.0f} ms" if seconds else "n/a"


def _counts(answers: list[Answer]) -> str:
    statuses: dict[int, int] = {}
    for a in answers:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    return ", ".join(f"{status or 'no answer'}: {n:,}" for status, n in sorted(statuses.items()))


if __name__ == "__main__":
    sys.exit(ChaosCheck().run())
