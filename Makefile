# The two commands a newcomer needs: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := wsgi

.PHONY: install run worker test lint format db-upgrade db-downgrade db-revision db-check fuzz clean up down pg-status cluster-up cluster-down cluster-status seed bench bench-http bench-pagination bench-lists prod prod-down prod-status client-check

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install db-upgrade  ## serve the API (SQLite under instance/ unless DATABASE_URL is set)
	$(BIN)/flask run --host $(HOST) --port $(PORT)

# CELERY_BROKER_URL (environment or .env) names the broker; the worker's relay publishes
# what the outbox holds unpublished, so this one process runs every job (docs/jobs.md).
worker: install db-upgrade  ## a Celery worker for the background jobs (needs CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/1)
	$(BIN)/celery --app wsgi:celery_app worker --loglevel INFO $(WORKER_ARGS)

# The fuzz suite is left to `make fuzz` (CI runs it after this): it was a quarter of the time.
test: install  ## the suite minus fuzzing: PostgreSQL if TEST_DATABASE_URL is set, else SQLite
	$(BIN)/pytest --ignore=tests/fuzz $(PYTEST_ARGS)

fuzz: install  ## schemathesis over every documented operation, on PostgreSQL
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-100} $(BIN)/pytest tests/fuzz -q -s -p no:cacheprovider

# Another package's private names (scripts/check_private_names.py says which, and which
# underscored names are documented API): PRIVATE_NAME_PATHS=... checks other files.
PRIVATE_NAME_PATHS ?= webapp config.py wsgi.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/check_private_names.py $(PRIVATE_NAME_PATHS)

client-check: install  ## generate a Python client from /openapi.json, mypy --strict a program against it, run it
	scripts/client_check/run.sh

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

db-upgrade: install
	mkdir -p instance
	$(BIN)/flask db upgrade

# "--" ends the options: click would read the revision -1 as an unknown option.
db-downgrade: install  ## one step back, or to rev=<revision>
	$(BIN)/flask db downgrade -- $(or $(rev),-1)

db-revision: install  ## autogenerate: make db-revision msg="add posts index"
	@test -n "$(msg)" || (echo 'usage: make db-revision msg="what changes"' && exit 2)
	$(BIN)/flask db migrate -m "$(msg)"

db-check: install  ## fails if the models and the migrations disagree
	$(BIN)/flask db check

# The edge's port; PORT given on the command line or in the environment wins
# (PORT=5000 above is make run's default, not the edge's).
PROD_PORT := $(if $(filter file,$(origin PORT)),8080,$(PORT))

prod: install  ## gunicorn behind a buffering nginx on 127.0.0.1:8080 (PORT=...), a Celery worker and its Redis, migrated; METRICS=1 adds Prometheus (docs/operations.md)
	@PORT=$(PROD_PORT) METRICS="$(METRICS)" scripts/prod.sh up

prod-down:  ## stop the nginx, gunicorn, Celery worker, Redis (and Prometheus) that make prod started
	@scripts/prod.sh down

prod-status:  ## are they running, and the URL (the script itself exits 3 when stopped)
	@scripts/prod.sh status || true

up:  ## a local PostgreSQL in .pgdata/ (no Docker); prints the DATABASE_URL to export
	@scripts/pg-local.sh up

down:  ## stop the local PostgreSQL (its data stays in .pgdata/)
	@scripts/pg-local.sh down

pg-status:  ## is the local PostgreSQL running, and its URL (the script itself exits 3 when stopped)
	@scripts/pg-local.sh status || true

cluster-up:  ## primary + streaming replica + PgBouncer in .cluster/ (no Docker); prints the URLs to export; METRICS=1 adds Prometheus
	@METRICS="$(METRICS)" scripts/cluster.sh up

cluster-down:  ## stop PgBouncer, the replica and the primary (their data stays in .cluster/)
	@scripts/cluster.sh down

cluster-status:  ## which parts of the local cluster run (the script itself exits 3 when one is stopped)
	@scripts/cluster.sh status || true

seed: install db-upgrade  ## demo data, on a migrated database: make seed users=1000 posts=10
	$(BIN)/flask seed --users $(or $(users),100) --posts-per-user $(or $(posts),5)

bench: bench-http bench-pagination  ## every benchmark (PostgreSQL: DATABASE_URL, default .../bench); see bench/README.md

bench-http: install  ## gunicorn -w 2 + wrk: the app vs a raw Flask+psycopg2 app, bulk vs COPY, statements per route
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null 2>&1 || sudo apt-get install -y -qq wrk; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-pagination: install  ## seed 100,000 posts, time page 1 vs depth 90,000 (offset and cursor)
	$(BIN)/python -m bench.pagination $(BENCH_ARGS)

bench-lists: install  ## lists at 100k and 1M posts (BENCH_ARGS="--sizes 100k,1m,5m"): time, ratio to 100k, every plan
	$(BIN)/python -m bench.lists_at_scale $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench-idempotency
bench-idempotency: install  ## statements and latency an Idempotency-Key adds to a POST (DATABASE_URL, default .../bench)
	DATABASE_URL=$${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/bench} $(BIN)/python bench/idempotency.py $(BENCH_ARGS)
