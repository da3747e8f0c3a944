# The README's commands. Each target creates the virtual environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

NODE_STAMP := node_modules/.installed

.PHONY: test lint lint-js typecheck pytest jstest demo lock clean reliability bench bench-quick wheel-check

# The package with the example's extra (Daphne, dj-database-url) and the tools.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[demo,test,dev]'
	touch $(STAMP)

# ESLint and its plugins, at the versions in package-lock.json (needs Node 20.19+ and npm).
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

## make test: lint, type check, the page scripts' unit tests and the whole test suite
test: lint typecheck jstest pytest

lint: $(STAMP) lint-js
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make lint-js: ESLint over relaybridge's browser scripts (eslint.config.mjs)
lint-js: $(NODE_STAMP)
	npx --no-install eslint .

typecheck: $(STAMP)
	$(BIN)/mypy relaybridge project tests bench

## make jstest: the page scripts' unit tests, on Node's own test runner (no npm packages)
jstest:
	node --test tests/js/

## make pytest: the tests in random order (the seed is in the header), with branch coverage
## of relaybridge and project measured in every process the suite starts. The floor
## (fail_under in pyproject.toml) applies to the whole suite only, not to PYTEST_ARGS runs.
# Tracing slows every process about twofold: the hang guard (pytest-timeout) doubles with it.
COVERAGE_PYTEST_ARGS := --timeout=240
pytest: $(STAMP)
	DJANGO_DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(COVERAGE_PYTEST_ARGS) $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report $(if $(PYTEST_ARGS),--fail-under=0)

## make reliability: the fault-injection suite in full (at least 50 mentions per scenario and
## a 500-mention burst, about a quarter of an hour); prints the table and writes
## reports/reliability.json. `make test` runs the same scenarios in a short form.
reliability: $(STAMP)
	RELAYBRIDGE_RELIABILITY=full $(BIN)/pytest tests/reliability -q $(PYTEST_ARGS)

## make bench: the benchmarks on a real stack (PostgreSQL, Redis, Daphne, Celery, relay
## worker, emulator; several minutes); prints the table, writes bench/results/latest.json.
## make bench-quick: the same harness with tiny loads, about a minute (CI runs it).
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

## make demo: the embedded default (SQLite, in-memory layer, emulator) in one process
demo: $(STAMP)
	$(BIN)/python manage.py run_demo $(if $(PORT),--port $(PORT))

## make wheel-check: build the wheel, install it into a new virtual environment with a
## small host project (tests/host_project, not the example) and check it works there
wheel-check:
	$(PYTHON) .ci/wheel_check.py

## make lock: refresh constraints.txt from the current environment
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache build dist .coverage .coverage.* htmlcov
