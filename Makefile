# The README's commands. Each target creates the virtual environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo lock clean reliability bench bench-quick

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,dev]'
	touch $(STAMP)

## make test: lint, type check and the whole test suite
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy relaybridge project

## make pytest: the tests in random order (the seed is in the header), with branch coverage
## of relaybridge and project measured in every process the suite starts. The floor
## (fail_under in pyproject.toml) applies to the whole suite only, not to PYTEST_ARGS runs.
# Tracing slows every process about twofold: the hang guard (pytest-timeout) doubles with it.
COVERAGE_PYTEST_ARGS := --timeout=240
pytest: $(STAMP)
	$(BIN)/python manage.py makemigrations --check --dry-run
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
## make bench-quick: the same harness with tiny loads, under a minute (CI runs it).
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

## make demo: the embedded default (SQLite, in-memory layer, emulator) in one process
demo: $(STAMP)
	$(BIN)/python manage.py run_demo $(if $(PORT),--port $(PORT))

## make lock: refresh constraints.txt from the current environment
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.* htmlcov
