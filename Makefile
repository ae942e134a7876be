# Two entry points for a fresh machine with Python >= 3.11 and make:
#   make run   - create .venv, install the locked runtime deps, serve the API on SQLite under ./var/
#   make test  - create .venv, install the locked dev deps, run ruff, mypy and the whole test suite
#                on both stores (memory/SQLite and a throwaway PostgreSQL cluster it starts)
#   make run-postgres - the API (2 workers) and the projection runners on a local PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UI_MODULES := ui/node_modules/.package-lock.json

.PHONY: run run-postgres test lint typecheck pytest faults vectors bench bench-ui bench-readme screenshots lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Playwright (Python) drives Debian's /usr/bin/chromium (tests/ui/browser_helpers.py): no browser
# of its own is ever downloaded. axe-core comes from ui/package-lock.json (exact pin, npm ci).
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock $(UI_MODULES)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install -q -r requirements-dev.lock
	touch $@

# The browser tests' npm packages (axe-core), exactly as ui/package-lock.json pins them; npm ci
# writes node_modules/.package-lock.json last, so it stands for a finished install.
$(UI_MODULES): ui/package.json ui/package-lock.json
	npm ci --prefix ui --no-audit --no-fund

run: $(VENV)/.runtime
	$(BIN)/outcomes serve

# README "PostgreSQL": db init, one `outcomes projections run` per read model, serve --workers 2.
run-postgres: $(VENV)/.runtime
	BIN=$(BIN) sh scripts/run-postgres.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

# Two workers, whole files to each (module fixtures are built once): the suite is CPU-bound once
# its stores are in memory; on the 2-core machine two workers take it from ~85 s to ~47 s.
# PYTEST_ARGS="-n 0" runs it in one process; a plain `.venv/bin/pytest` is serial too.
PYTEST_ARGS ?= -n 2 --dist loadfile
# PostgreSQL for the suite: tests/support/pg_cluster.py installs Debian's postgresql when no initdb
# is found (root, or sudo), starts a throwaway cluster (temp folder, free loopback port, trust
# auth, fsync off), passes OUTCOMES_TEST_POSTGRES_HOST/PORT/USER to pytest and removes the
# cluster when pytest ends, fails or is interrupted. Standard library only: no venv needed.
WITH_POSTGRES := $(PYTHON) tests/support/pg_cluster.py run --

pytest: $(VENV)/.dev
	$(WITH_POSTGRES) $(BIN)/pytest $(PYTEST_ARGS)

# The fault tests alone (kill -9, PostgreSQL restarts, failover; they also run in `make test`).
faults: $(VENV)/.dev
	$(WITH_POSTGRES) $(BIN)/pytest $(PYTEST_ARGS) -m faults

vectors: $(VENV)/.runtime
	OUTCOMES=$(BIN)/outcomes $(PYTHON) ../shared/checks/vectors

test:
	@start=$$(date +%s); $(MAKE) --no-print-directory lint typecheck pytest; status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s (exit $$status)"; exit $$status

# Small sizes (bench/readme.py COMMANDS runs the same); each prints a JSON line last.
bench: $(VENV)/.dev
	$(BIN)/python -m bench.record_assessments --episodes 100
	$(BIN)/python -m bench.import_csv --rows 1000
	$(BIN)/python -m bench.rescore --episodes 500
	$(BIN)/python -m bench.trust_cost --episodes 100
	$(BIN)/python -m bench.api_load --requests 30 --workers 2 --synchronous NORMAL
	# PostgreSQL at small sizes (its own throwaway cluster, fsync on); README "Benchmarks" for full size
	$(BIN)/python -m bench.postgres_scale --episodes 500 --large 1000 --repeat 1 --requests 10 \
		--burst 2000 --catchup-budget 120

# Issue 14: server-side p99 of every /ui/ page on a 100,000-episode SQLite store (built once under
# var/bench/, reused by its parameters' digest), next to GET /health and the API's JSON reads.
# BENCH_UI_ARGS="--episodes 10000 --requests 100" for a quicker run.
BENCH_UI_ARGS ?=
bench-ui: $(VENV)/.dev
	$(BIN)/python -m bench.ui_pages $(BENCH_UI_ARGS)

# Rerun the make bench sizes and rewrite README.md's marked figures table from their JSON lines.
bench-readme: $(VENV)/.dev
	$(BIN)/python -m bench.readme --run

# Rewrite the pages' screenshots (docs/screenshots/*.png, the README's and the browser tests'
# baselines) from a freshly seeded store in Debian's Chromium (scripts/ui-screenshots.py).
screenshots: $(VENV)/.dev
	$(BIN)/python scripts/ui-screenshots.py

# Re-pin the lock files from pyproject.toml (needs the package registry).
lock: $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile -q --python-version 3.11 pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile -q --python-version 3.11 --extra dev pyproject.toml -o requirements-dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
