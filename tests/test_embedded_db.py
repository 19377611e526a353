"""The embedded PostgreSQL of `make run` and `make test` (coupons_site/embedded_db.py), with real servers.

The tests share one cluster in a temporary folder (initdb takes seconds): each starts it (or finds it running),
then reuses, stops, kills with SIGKILL, or lies to it through its postmaster.pid, and starts it again.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import psycopg
import pytest
from django.conf import settings

from coupons_site import embedded_db

pytestmark = pytest.mark.slow


def connect(data_dir: Path, dbname: str = embedded_db.DATABASE) -> psycopg.Connection:
    return psycopg.connect(
        host=str(embedded_db.socket_dir(data_dir)), port=embedded_db.PORT, user="postgres", dbname=dbname, autocommit=True
    )


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def dead_pid() -> int:
    """The PID of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@contextlib.contextmanager
def pg_folder():
    """A temporary folder outside pytest's own: pytest makes /tmp/pytest-of-<user> private again whenever a session
    starts, and as root the server runs as the user `pgserver`, who must be able to reach its data."""
    folder = Path(tempfile.mkdtemp(prefix="coupons-embedded-db-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def data_dir():
    with pg_folder() as folder:
        try:
            yield folder / "pgdata"
        finally:
            embedded_db.stop(folder / "pgdata")


def test_start_creates_the_cluster_and_database_and_listens_on_no_tcp_port(data_dir):
    url = embedded_db.start(data_dir)

    assert url == f"postgres://postgres@{str(data_dir.resolve()).replace('/', '%2F')}:5432/coupons"
    with connect(data_dir) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("coupons",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone() == (18,)
    server = psutil.Process(postmaster_pid(data_dir))
    assert [c for c in server.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN] == []


def test_a_second_start_reuses_the_running_server_and_a_restart_keeps_the_data(data_dir):
    embedded_db.start(data_dir)
    first = postmaster_pid(data_dir)
    with connect(data_dir) as conn:
        conn.execute("CREATE TABLE kept_over_restart (n int); INSERT INTO kept_over_restart VALUES (42)")

    embedded_db.start(data_dir)
    assert postmaster_pid(data_dir) == first

    assert embedded_db.stop(data_dir) is True
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    assert not (data_dir / "postmaster.pid").exists()
    assert embedded_db.stop(data_dir) is False

    embedded_db.start(data_dir)
    assert postmaster_pid(data_dir) != first
    with connect(data_dir) as conn:
        assert conn.execute("SELECT n FROM kept_over_restart").fetchall() == [(42,)]


def test_start_recovers_from_a_server_killed_with_sigkill(data_dir):
    embedded_db.start(data_dir)
    with connect(data_dir) as conn:
        conn.execute("CREATE TABLE kept_over_crash (n int); INSERT INTO kept_over_crash VALUES (7)")
    killed = psutil.Process(postmaster_pid(data_dir))
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert (data_dir / "postmaster.pid").exists()  # the stale file a crash leaves behind

    embedded_db.start(data_dir)

    assert postmaster_pid(data_dir) != killed.pid
    with connect(data_dir) as conn:
        assert conn.execute("SELECT n FROM kept_over_crash").fetchall() == [(7,)]  # committed rows survive the crash


def test_a_pid_file_naming_another_live_process_is_not_taken_for_the_server(data_dir):
    embedded_db.start(data_dir)
    pid_file = data_dir / "postmaster.pid"
    recorded = pid_file.read_text().splitlines()
    embedded_db.stop(data_dir)
    # After a kill -9 or a reboot the PID in the file can belong to any program: here, this test's own process.
    pid_file.write_text("\n".join([str(os.getpid()), *recorded[1:]]) + "\n")

    embedded_db.start(data_dir)

    assert postmaster_pid(data_dir) != os.getpid()
    with connect(data_dir) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_throwaway_server_is_removed_after_use_with_the_leftovers_of_a_killed_session(monkeypatch):
    # libpq's variables of a developer's shell change nothing: the server's socket name is fixed.
    monkeypatch.setenv("PGPORT", "1")
    monkeypatch.setenv("PGHOST", "/nonexistent")
    with pg_folder() as folder:
        base = folder / "pytest-pg"
        leftover = base / str(dead_pid())
        embedded_db.start(leftover, throwaway=True)  # as a test session killed with SIGKILL would have left it
        leftover_server = psutil.Process(postmaster_pid(leftover))

        with embedded_db.throwaway_server(base) as socket_dir:
            assert not leftover.exists()
            leftover_server.wait(timeout=30)
            mine = base / str(os.getpid())
            assert socket_dir == mine.resolve()
            with psycopg.connect(host=str(socket_dir), port=embedded_db.PORT, user="postgres", dbname="postgres") as conn:
                assert conn.execute("SHOW fsync").fetchone() == ("off",)
            server = psutil.Process(postmaster_pid(mine))

        server.wait(timeout=30)
        assert list(base.iterdir()) == []


def test_database_url_follows_the_socket_directory_the_server_recorded(tmp_path):
    data_dir = tmp_path / "pgdata"
    data_dir.mkdir()
    assert embedded_db.database_url(data_dir) == f"postgres://postgres@{str(data_dir).replace('/', '%2F')}:5432/coupons"

    # A data directory whose path is too long for a unix socket gets its socket elsewhere, in postmaster.pid.
    (data_dir / "postmaster.pid").write_text("123\n/x\n1700000000\n5432\n/tmp/abc\n\n  1 2\nready\n")
    assert embedded_db.database_url(data_dir) == "postgres://postgres@%2Ftmp%2Fabc:5432/coupons"


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("", ("django.db.backends.postgresql", "{var}/pgdata", "coupons")),
        ("postgres://someone@db.example:5433/prod", ("django.db.backends.postgresql", "db.example", "prod")),
    ],
)
def test_settings_use_the_embedded_server_unless_database_url_is_set(tmp_path, database_url, expected):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "COUPONS_VAR_DIR"}}
    env |= {"COUPONS_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "coupons_site.settings"}
    if database_url:
        env["DATABASE_URL"] = database_url
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings as s; d = s.DATABASES['default']; print(d['ENGINE'], d['HOST'], d['NAME'])",
        ],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tuple(out) == tuple(part.format(var=tmp_path) for part in expected)
    assert not (tmp_path / "pgdata").exists()  # importing the settings starts nothing
