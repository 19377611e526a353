#!/usr/bin/env bash
# `make run`: start the embedded PostgreSQL (unless DATABASE_URL names a server), migrate, load the demo data once,
# then serve the site with a Celery worker and beat beside it. Ctrl-C (SIGINT), SIGTERM, or the end of any of the
# three processes stops everything this script started, the embedded PostgreSQL last.
# Safe to run again: the database's data stays in var/pgdata, and migrate and seed_demo change nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# DEBUG is off unless asked for (settings.py); `make run` is the local development server, so it asks.
export DJANGO_DEBUG=${DJANGO_DEBUG:-1}

PY=.venv/bin/python
CELERY=.venv/bin/celery
HOST=${RUN_HOST:-127.0.0.1}
PORT=${RUN_PORT:-8000}
LOG_DIR=${COUPONS_VAR_DIR:-var}/log
mkdir -p "$LOG_DIR"

# A second `make run` beside a first one would fail late, after the worker had started; say so up front.
if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
    echo "Something already listens on $HOST:$PORT (another 'make run'?). Stop it, or choose a port: make run RUN_PORT=8001" >&2
    exit 1
fi

pids=()
names=()
embedded_db=""
start() {  # start NAME LOGFILE COMMAND...: run a process in the background, remember it
    local name=$1 log=$2
    shift 2
    if [[ -n $log ]]; then "$@" >>"$log" 2>&1 & else "$@" & fi
    pids+=($!)
    names+=("$name")
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if ((${#pids[@]})); then
        echo
        echo "Stopping ${names[*]}..."
        kill -TERM "${pids[@]}" 2>/dev/null || true
        # Celery's warm shutdown lets a running task finish; after 20 s whatever is left is killed.
        for _ in $(seq 1 40); do
            local alive=0 pid
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            ((alive)) || break
            sleep 0.5
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait 2>/dev/null || true
    fi
    # PostgreSQL runs in a session of its own (Ctrl-C never reaches it): it is stopped here, after its clients.
    if [[ -n $embedded_db ]]; then $PY -m coupons_site.embedded_db stop || true; fi
    ((${#pids[@]})) && echo "Stopped."
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP  # the terminal went away

# Without DATABASE_URL, the embedded PostgreSQL (coupons_site/embedded_db.py): started here, or reused when a
# run that was killed left it running; settings find its socket under var/pgdata.
if [[ -z ${DATABASE_URL:-} ]]; then
    embedded_db=1
    $PY -m coupons_site.embedded_db start
fi

$PY manage.py migrate --noinput
echo
$PY manage.py seed_demo --base-url "http://$HOST:$PORT"
echo

# The worker runs tasks in threads (no forked children to leave behind); beat is its own process, and there
# is exactly one of it, as production requires. Their logs go to files so the logins above stay readable.
start "celery-worker" "$LOG_DIR/celery-worker.log" \
    $CELERY -A coupons_site worker --pool threads --concurrency 2 --loglevel INFO --hostname "run@%h"
start "celery-beat" "$LOG_DIR/celery-beat.log" $CELERY -A coupons_site beat --loglevel INFO
start "runserver" "" $PY manage.py runserver "$HOST:$PORT" --noreload

echo "Celery worker and beat are running; their logs: $LOG_DIR/celery-worker.log and $LOG_DIR/celery-beat.log."
echo "Serving on http://$HOST:$PORT/ (back office at http://$HOST:$PORT/admin/). Press Ctrl-C to stop everything."

# Any process ending stops the others: a half-running service would only mislead.
ended=""
status=0
wait -n -p ended "${pids[@]}" || status=$?
for i in "${!pids[@]}"; do
    if [[ ${pids[$i]} == "$ended" ]]; then
        echo "${names[$i]} ended (exit status $status); stopping the rest." >&2
        if [[ ${names[$i]} == celery-* ]]; then tail -n 20 "$LOG_DIR/${names[$i]}.log" >&2; fi
    fi
done
exit $((status ? status : 1))
