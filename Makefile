# The two front-door commands: `make run` (serve everything locally) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

.PHONY: install run test lint migrate

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

## Set up (virtualenv, packages, database, demo data) and serve the site, a Celery worker and beat.
run: $(STAMP)
	@bash scripts/run.sh

## Set up and run the test suite (PostgreSQL when DATABASE_URL points at it).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput
