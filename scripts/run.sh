#!/usr/bin/env bash
# `make run`: migrate, load the demo data once, then serve the site with a Celery worker and beat beside it.
# Ctrl-C (or any exit) stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${RUN_HOST:-127.0.0.1}
PORT=${RUN_PORT:-8000}

$PY manage.py migrate --noinput
$PY manage.py seed_demo

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# One worker process with the beat scheduler embedded (-B): locally there is exactly one beat, as required.
.venv/bin/celery -A coupons_site worker -B --pool threads --concurrency 2 --loglevel INFO \
    --schedule "${COUPONS_VAR_DIR:-var}/celerybeat-schedule" &
pids+=($!)

echo "Serving on http://$HOST:$PORT/ (admin at http://$HOST:$PORT/admin/). Press Ctrl-C to stop."
$PY manage.py runserver "$HOST:$PORT" --noreload &
pids+=($!)
wait -n "${pids[@]}"
