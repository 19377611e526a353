#!/usr/bin/env bash
# Smoke test of `make run` (called at the end of .ci/run): a fresh clone of the current commit, on the embedded
# defaults (embedded PostgreSQL, filesystem broker: every DATABASE_URL / CELERY_* / REDIS_URL / DJANGO_* / PG*
# variable unset), must serve the admin login page, accept a printed demo login, and run a task in its Celery
# worker; Ctrl-C (SIGINT to its process group) must then stop everything it started, the embedded PostgreSQL
# included. A second make run in the same clone must find the first one's data and serve again. Bounded in time:
# it never hangs CI.
#
# SMOKE_REF (default HEAD) is the commit to test: only committed work is in a clone.
# SMOKE_TIMEOUT (seconds, default 240) bounds the wait for the page; SMOKE_PORT (default 8000) is the port, and
# when it is taken on this machine a free one is used instead, so a developer's own `make run` is never mistaken
# for the one under test.
# SMOKE_NETNS=1 runs make run in a network namespace of its own (unshare --net, as root), with only its own
# loopback: the machine's PostgreSQL on 127.0.0.1:5432, its Redis and every other server are out of reach, as on
# a machine that has none. The clone's virtualenv is installed before, outside, since PyPI is out of reach too.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
timeout_s=${SMOKE_TIMEOUT:-240}
port=${SMOKE_PORT:-8000}
# Inside the namespace, the run continues in the folder the outer run prepared (SMOKE_IN_NETNS names it).
work=${SMOKE_IN_NETNS:-$(mktemp -d "${TMPDIR:-/tmp}/coupons-smoke.XXXXXX")}
clone=$work/clone
log=$work/make-run.log
pgid=""

say() { echo "smoke_make_run [${SECONDS}s]: $*"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
group_alive() { [[ -n $pgid ]] && kill -0 -- "-$pgid" 2>/dev/null; }
# Processes running from the clone, whatever their process group (one that escaped the group counts too).
clone_processes() {
    local dir pid
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        [[ $(readlink "$dir/cwd" 2>/dev/null) == "$clone"* ]] && echo "$pid"
    done
    return 0
}

finish() {
    local status=$?
    trap - EXIT INT TERM
    if group_alive; then
        kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    local leftover
    leftover=$(clone_processes)
    if [[ -n $leftover ]]; then kill -KILL $leftover 2>/dev/null || true; fi
    rm -rf "$work"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    say "FAILED: $*" >&2
    echo "----- output of make run -----" >&2
    grep -v "^WARNING: Location 'file://" "$log" >&2 || true
    for extra in "$clone"/var/log/celery-*.log; do
        [[ -f $extra ]] || continue
        echo "----- ${extra#"$clone"/} (last 30 lines) -----" >&2
        tail -n 30 "$extra" >&2
    done
    exit 1
}

commit=$(git -C "$repo" rev-parse --verify "${SMOKE_REF:-HEAD}^{commit}")
if [[ -z ${SMOKE_IN_NETNS:-} ]]; then
    if [[ -z ${SMOKE_REF:-} && -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
        say "note: the work tree has uncommitted changes; only commit ${commit:0:12} is tested"
    fi
    git clone --quiet "$repo" "$clone"
    git -C "$clone" checkout --quiet --detach "$commit"
fi

# The project's variables are unset: a fresh machine has none of them (nor libpq's PG* defaults).
unset_args=()
for name in $(compgen -e); do
    case $name in
        DATABASE_URL | REDIS_URL | DB_CONN_MAX_AGE | CELERY_* | DJANGO_* | COUPONS_* | PYTEST_ADDOPTS | PG*) unset_args+=(-u "$name") ;;
    esac
done

if [[ ${SMOKE_NETNS:-0} == 1 && -z ${SMOKE_IN_NETNS:-} ]]; then
    say "installing the clone's virtualenv, then going on in a network namespace of its own"
    (cd "$clone" && env "${unset_args[@]}" make install) >"$log" 2>&1 || fail "make install failed"
    say "the clone's virtualenv is installed"
    trap - EXIT INT TERM  # the run in the namespace takes over the folder and its cleanup
    SMOKE_IN_NETNS=$work exec unshare --net -- bash -c 'ip link set lo up && exec bash "$0"' "$0"
fi
if [[ -n ${SMOKE_IN_NETNS:-} ]]; then
    if port_busy 5432; then fail "127.0.0.1:5432 answers inside the network namespace"; fi
    say "in a network namespace of its own: nothing answers on 127.0.0.1:5432 (the machine's PostgreSQL is out of reach)"
fi

if port_busy "$port"; then
    taken=$port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    say "port $taken is in use on this machine; serving on $port instead"
fi
url=http://127.0.0.1:$port

# Job control gives the background job its own process group (pgid = its pid), as a terminal would, and leaves
# SIGINT as it is (a non-interactive shell would otherwise start it with SIGINT ignored).
make_run_start() {
    set -m
    (cd "$clone" && exec env "${unset_args[@]}" RUN_PORT="$port" make run) >"$log" 2>&1 &
    pgid=$!
    set +m
}

# The admin login page answers, within the time bound.
login_page_wait() {
    local page=$work/login.html code=000
    while ((SECONDS < deadline)); do
        group_alive || fail "make run ended before serving $url/admin/login/"
        code=$(curl -s --max-time 5 -o "$page" -w '%{http_code}' "$url/admin/login/" || true)
        [[ $code == 200 ]] && break
        sleep 2
    done
    [[ $code == 200 ]] || fail "$url/admin/login/ did not answer 200 within $timeout_s s (last status $code)"
    grep -q 'name="password"' "$page" && grep -q csrfmiddlewaretoken "$page" || fail "$url/admin/login/ is not the admin login form"
    say "$url/admin/login/ answers 200 with the login form"
    grep -q '^Embedded PostgreSQL is up' "$log" || fail "make run did not start the embedded PostgreSQL"
    say "make run started the embedded PostgreSQL: $(grep -m1 '^Embedded PostgreSQL is up' "$log")"
}

# A demo login printed by make run opens the back office.
demo_login_check() {
    local password jar=$work/cookies csrf after
    password=$(sed -n 's/^ *admin  *password \([^ ]*\).*/\1/p' "$log" | head -n 1)
    [[ -n $password ]] || fail "make run printed no password for the demo user 'admin'"
    rm -f "$jar"
    curl -s --max-time 10 -c "$jar" -b "$jar" -o /dev/null "$url/admin/login/"
    csrf=$(awk '$6 == "csrftoken" { print $7 }' "$jar")
    after=$(curl -s --max-time 10 -c "$jar" -b "$jar" -o /dev/null -w '%{http_code} %{redirect_url}' \
        -H "Referer: $url/admin/login/" --data-urlencode "csrfmiddlewaretoken=$csrf" \
        --data-urlencode "username=admin" --data-urlencode "password=$password" --data-urlencode "next=/admin/" \
        "$url/admin/login/" || true)
    [[ $after == "302 $url/admin/" ]] || fail "logging in as the demo admin answered '$after', not a redirect to /admin/"
    say "the demo login 'admin' printed by make run opens the back office"
}

# Ctrl-C stops everything make run started, the embedded PostgreSQL included (its cwd is in the clone).
ctrl_c_check() {
    local left
    kill -INT -- "-$pgid"
    for _ in $(seq 1 60); do
        group_alive || break
        sleep 0.5
    done
    if group_alive; then
        left=$(ps -eo pid=,pgid=,args= | awk -v g="$pgid" '$2 == g' || true)
        fail "30 s after SIGINT, processes of make run are still running: $left"
    fi
    left=$(clone_processes)
    [[ -z $left ]] || fail "processes started from the clone outlived make run: $left"
    wait "$pgid" 2>/dev/null || true
    say "SIGINT stopped make run and everything it started; nothing is left running"
}

say "make run in a fresh clone of ${commit:0:12} ($clone), serving on $url"
deadline=$((SECONDS + timeout_s))
make_run_start
# 1. The login page, and the embedded PostgreSQL behind it.
login_page_wait
# 2. A printed demo login.
demo_login_check

# 3. The worker runs a task sent through the broker (beat's own first tick comes only after 30 s).
worker_log=$clone/var/log/celery-worker.log
(cd "$clone" && env "${unset_args[@]}" DJANGO_DEBUG=1 .venv/bin/python -c \
    'from coupons_site.celery import app; app.send_task("books.tasks.expire_reservations")') \
    || fail "could not send a task to the broker"
until grep -q 'books.tasks.expire_reservations\[.*\] succeeded' "$worker_log" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "the Celery worker did not run books.tasks.expire_reservations within $timeout_s s"
    group_alive || fail "make run ended before the Celery worker ran a task"
    sleep 1
done
grep -q 'beat: Starting' "$clone/var/log/celery-beat.log" 2>/dev/null || fail "Celery beat did not start"
say "the Celery worker ran books.tasks.expire_reservations; beat is running"

# 4. Ctrl-C stops everything.
ctrl_c_check

# 5. A second make run reuses the data in var/: the same database, the demo not loaded again.
log=$work/make-run-2.log
say "make run again in the same clone"
deadline=$((SECONDS + timeout_s))
make_run_start
login_page_wait
grep -q 'Demo data is loaded already' "$log" || fail "the second make run did not find the demo data of the first"
say "the second make run found the data of the first (the demo is not loaded twice)"
demo_login_check
ctrl_c_check
say "OK"
