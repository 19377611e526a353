"""`make scale-check`: the service as several processes against one PostgreSQL and one Redis, under mixed traffic,
with PostgreSQL stopped for a few seconds in the middle; then the invariants are checked in the database.

Topology started here: a private PostgreSQL cluster and a private Redis (scripts/private_services.py: temporary
directories, free ports; the machine's shared servers are never touched), two gunicorn instances on free ports, two
Celery workers and one beat, all sharing the database `coupons_scale` of that cluster and Redis dbs 0 (broker) and
1 (cache). Traffic: client threads that each
pick an instance at random and run assign -> lock -> redeem / unlock / abandon on a book of unique codes, and
redeem-without-token on one hot shared code, for a bounded time. Every request has a 10 s timeout (a hang is a
failure). Exit status 1 when an invariant breaks.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import check_stack as stack
from check_stack import LOCK_TTL, TIMEOUT, Answer, log
from invariants import invariants_broken
from private_services import PrivatePostgres, PrivateRedis, free_port

PORTS = (free_port(), free_port())
DB_NAME = "coupons_scale"
# DATABASE_URL, CELERY_BROKER_URL and REDIS_URL are set in main(), once the private servers are up.
ENV = stack.stack_env()
DURATION = float(os.environ.get("SCALE_SECONDS", "60"))
CLIENTS = int(os.environ.get("SCALE_CLIENTS", "16"))
OUTAGE_SECONDS = float(os.environ.get("SCALE_OUTAGE_SECONDS", "5"))
HOT_USES = 300
HOT_USER_LIMIT = 2


def start_processes() -> list[subprocess.Popen]:
    logs = stack.ROOT / "var" / "scale-check"
    logs.mkdir(parents=True, exist_ok=True)
    commands = [
        *(stack.gunicorn_command(port, "--graceful-timeout", "5", "--access-logfile", "-") for port in PORTS),
        *(stack.worker_command(f"worker{i}") for i in (1, 2)),
        stack.beat_command(logs / "celerybeat-schedule"),
    ]
    processes = []
    for index, command in enumerate(commands):
        out = open(logs / f"process-{index}.log", "w")  # closed with the process
        processes.append(
            subprocess.Popen(command, cwd=stack.ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        )
    for port in PORTS:
        if not stack.web_wait(port):
            raise SystemExit(f"gunicorn on port {port} did not come up; see var/scale-check/")
    return processes


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


class Traffic:
    def __init__(self, token: str, book_id: int) -> None:
        self.token = token
        self.book_id = book_id
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stop_at = 0.0

    def call(self, method: str, path: str, endpoint: str, payload: dict | None = None) -> Answer:
        answer = stack.api_call(random.choice(PORTS), method, path, endpoint, token=self.token, payload=payload)
        with self.lock:
            self.answers.append(answer)
        return answer

    def unique_code_cycle(self, user: str) -> None:
        assigned = self.call("POST", f"/api/v1/books/{self.book_id}/assign/", "assign", {"user_id": user})
        if assigned.status != 201:
            return
        code = assigned.body["code"]
        locked = self.call("POST", f"/api/v1/codes/{code}/lock/", "lock", {"user_id": user, "ttl_seconds": LOCK_TTL})
        if locked.status != 201:
            return
        choice = random.random()
        if choice < 0.5:
            self.call(
                "POST",
                f"/api/v1/codes/{code}/redeem/",
                "redeem",
                {"user_id": user, "token": locked.body["token"], "amount": "20", "currency": "EUR"},
            )
        elif choice < 0.75:
            self.call("POST", f"/api/v1/codes/{code}/unlock/", "unlock", {"user_id": user, "token": locked.body["token"]})
        # else: abandoned; the reservation expires and the beat task marks it

    def hot_redeem(self) -> None:
        user = f"hot-{random.randrange(200)}"
        self.call("POST", "/api/v1/codes/HOTCODE/redeem/", "redeem-hot", {"user_id": user, "amount": "10", "currency": "EUR"})

    def client(self, index: int) -> None:
        n = 0
        while time.time() < self.stop_at:
            n += 1
            if random.random() < 0.6:
                self.unique_code_cycle(f"user-{index}-{n}")
            else:
                self.hot_redeem()
            if random.random() < 0.2:
                self.call("GET", "/api/v1/codes/HOTCODE/validate/?user_id=someone&amount=10&currency=EUR", "validate")


def api(method: str, path: str, token: str | None, payload: dict) -> dict:
    """A set-up request to the first instance; anything but a success ends the check."""
    answer = stack.api_call(PORTS[0], method, path, "setup", token=token or "", payload=payload, timeout=30)
    if not 200 <= answer.status < 300:
        raise SystemExit(f"set-up request {method} {path} answered {answer.status}: {answer.body}")
    return answer.body


def check(postgres: PrivatePostgres, traffic: Traffic, outage: tuple[float, float]) -> list[str]:
    """Every invariant, read straight from PostgreSQL. Returns the broken ones."""
    import psycopg

    problems: list[str] = []
    with psycopg.connect(f"{postgres.url}/{DB_NAME}") as conn:

        def one(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        problems.extend(invariants_broken(conn))
        figures = {
            "redemptions": one("SELECT count(*) FROM redemptions_redemption"),
            "hot code redemptions": one("SELECT redeemed_count FROM books_code WHERE code = 'HOTCODE'"),
            "reservations expired by the beat task": one("SELECT count(*) FROM books_reservation WHERE status = 'expired'"),
            "reservations released": one("SELECT count(*) FROM books_reservation WHERE status = 'released'"),
        }
    answers = traffic.answers
    start, end = outage
    during = [a for a in answers if start <= a.at <= end]
    server_errors = [a for a in answers if a.status >= 500 and not (a.status == 503 and stack.is_json_error(a.body))]
    hangs = [a for a in answers if a.status == 0]
    if server_errors:
        problems.append(f"{len(server_errors)} answer(s) were a 5xx other than a 503 JSON error, e.g. {server_errors[0]}")
    if hangs:
        problems.append(f"{len(hangs)} request(s) got no answer within {TIMEOUT} s (hang or refused), e.g. {hangs[0]}")
    outage_503 = [a for a in during if a.status == 503]
    if not outage_503:
        problems.append("no request was answered 503 during the outage: the outage was not exercised")
    print("\nScale check summary")
    print(
        f"- topology: gunicorn x2 (ports {PORTS[0]}, {PORTS[1]}, 3 workers each), Celery workers x2, beat x1, "
        "one (private) PostgreSQL, one (private) Redis"
    )
    print(
        f"- traffic: {CLIENTS} clients for {DURATION:.0f} s, {len(answers):,} requests; PostgreSQL stopped for {end - start:.1f} s"
    )
    print(
        f"- during the outage: {len(during):,} requests, {len(outage_503):,} answered 503 JSON, "
        f"{sum(1 for a in during if a.status and a.status < 500):,} answered before the stop took effect"
    )
    for endpoint, statuses in sorted(stack.by_endpoint(answers).items()):
        print(f"- {endpoint}: " + ", ".join(f"{status or 'no answer'}: {n:,}" for status, n in sorted(statuses.items())))
    for label, value in figures.items():
        print(f"- {label}: {value:,}")
    return problems


def main() -> int:
    started = time.time()
    log("starting a private PostgreSQL cluster and a private Redis")
    postgres = PrivatePostgres()
    redis = PrivateRedis()
    try:
        postgres.start()
        ENV.update(DATABASE_URL=f"{postgres.url}/{DB_NAME}", CELERY_BROKER_URL=redis.url(0), REDIS_URL=redis.url(1))
        return run(postgres)
    finally:
        postgres.destroy()
        redis.destroy()
        log(f"scale check took {time.time() - started:.0f} s")


def run(postgres: PrivatePostgres) -> int:
    log(f"preparing database {DB_NAME} on port {postgres.port}")
    client = stack.database_prepare(postgres.url, DB_NAME, ENV, tenant="scale", title="Scale check")
    processes = start_processes()
    outage = (0.0, 0.0)
    try:
        token = api(
            "POST", "/api/v1/auth/token/", None, {"client_id": client["client_id"], "client_secret": client["client_secret"]}
        )["access"]
        book = api(
            "POST",
            "/api/v1/books/",
            token,
            {
                "name": "Unique codes",
                "status": "active",
                "discount_type": "percent",
                "discount_value": "10",
                "max_codes_per_user": 1,
                "max_redemptions_per_user": 1,
                "lock_ttl_seconds": LOCK_TTL,
            },
        )
        api("POST", f"/api/v1/books/{book['id']}/codes/generate/", token, {"count": 5000})
        hot = api(
            "POST",
            "/api/v1/books/",
            token,
            {
                "name": "Hot shared code",
                "status": "active",
                "discount_type": "fixed",
                "discount_value": "5",
                "currency": "EUR",
                "requires_assignment": False,
                "uses_per_code": HOT_USES,
                "max_redemptions_per_user": HOT_USER_LIMIT,
                "max_codes_per_user": None,
            },
        )
        api("POST", f"/api/v1/books/{hot['id']}/codes/upload/", token, {"codes": ["HOTCODE"]})
        traffic = Traffic(token, book["id"])
        traffic.stop_at = time.time() + DURATION
        threads = [threading.Thread(target=traffic.client, args=(i,)) for i in range(CLIENTS)]
        log(f"driving {CLIENTS} clients at both instances for {DURATION:.0f} s")
        for thread in threads:
            thread.start()
        time.sleep(DURATION / 2 - OUTAGE_SECONDS / 2)
        log("stopping PostgreSQL")
        stop_started = time.time()
        postgres.stop()
        time.sleep(OUTAGE_SECONDS)
        postgres.start()
        while not postgres.ready():
            time.sleep(0.2)
        outage = (stop_started, time.time())
        log(f"PostgreSQL back after {outage[1] - outage[0]:.1f} s")
        for thread in threads:
            thread.join()
        log("traffic done; waiting for the beat task to mark the last expired reservations")
        time.sleep(LOCK_TTL + 2 * int(ENV["COUPONS_EXPIRY_INTERVAL"]) + 3)
    finally:
        if not postgres.ready():
            postgres.start()
        stop_processes(processes)
    problems = check(postgres, traffic, outage)
    if problems:
        print("\nINVARIANTS BROKEN:")
        for problem in problems:
            print(f"- {problem}")
        return 1
    print("\nEvery invariant held.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
