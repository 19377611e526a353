# The two front-door commands: `make run` (serve everything locally) and `make test`.
# Both create the virtualenv in .venv. `make run` installs the runtime packages (requirements.txt); every other
# target installs the development set (requirements-dev.txt, which includes requirements.txt). Each set is
# installed again only when one of its files changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-requirements
STAMP := $(VENV)/.installed-requirements-dev

.PHONY: install run test lint migrate bench scale-check chaos client schema-snapshot

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

# Runtime packages only: what the service needs to serve (make run, make migrate).
$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(RUNTIME_STAMP)

# Runtime and development packages (tests, lint, benchmarks, the generated client, the checks).
$(STAMP): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(RUNTIME_STAMP) $(STAMP)

install: $(STAMP)

## Set up (virtualenv, packages, the embedded PostgreSQL unless DATABASE_URL is set, demo data), print the logins,
## and serve the site on http://127.0.0.1:8000 with a Celery worker and beat. Ctrl-C stops them all.
## RUN_HOST / RUN_PORT to change.
run: $(RUNTIME_STAMP)
	@bash scripts/run.sh

## Set up and run the test suite on PostgreSQL: DATABASE_URL's server, else a throw-away embedded one for the run.
## PYTEST_ARGS to narrow it.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

migrate: $(RUNTIME_STAMP)
	$(PY) manage.py migrate --noinput

## Benchmarks of SPEC "Performance targets" on PostgreSQL (DATABASE_URL, default database coupons_bench); prints the
## results table. Not part of `make test`. BENCH_SCALE=0.1 for a quick run; `make bench BENCH=generate` for one.
bench: $(STAMP)
	$(PY) -m bench.run $(BENCH)

## Two gunicorn instances, two Celery workers and one beat against one PostgreSQL and one Redis, mixed traffic,
## PostgreSQL stopped for a few seconds mid-run, then the invariants checked; non-zero exit when one breaks.
scale-check: $(STAMP)
	$(PY) scripts/scale_check.py

## SPEC's reliability contract by killing real processes: private redis-servers (cache, broker), gunicorn, Celery
## workers and beat under traffic; kills the cache, the broker (started again empty) and a worker mid-job; checks
## no 500, the lifecycle served without the cache, every job ended whole, the invariants. Non-zero exit on a break.
chaos: $(STAMP)
	$(PY) scripts/chaos_check.py

## The Python client of the integrator API, generated from the OpenAPI schema with openapi-python-client into
## clients/python/ (a build artifact, not committed; `pip install clients/python`). Fails on any generator warning.
client: $(STAMP)
	@mkdir -p var
	@# Schema generation needs no secret: DEBUG lets settings load on a machine without DJANGO_SECRET_KEY.
	DJANGO_DEBUG=1 $(PY) manage.py spectacular --validate --fail-on-warn --format openapi-json --file var/openapi.json
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/openapi-python-client generate --path var/openapi.json \
		--config clients/openapi-python-client.yaml --meta setup --output-path clients/python --overwrite --fail-on-warning

## Refresh the committed API schema snapshot (api/tests/schema_snapshot.json) after an intended schema change;
## api/tests/test_schema_snapshot.py fails with a diff whenever /api/schema/ differs from it.
schema-snapshot: $(STAMP)
	DJANGO_DEBUG=1 $(PY) manage.py spectacular --format openapi-json --file api/tests/schema_snapshot.json
