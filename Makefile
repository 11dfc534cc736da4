# Two commands on a fresh machine with only Python: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Install, migrate, load the demo office, serve GraphiQL on http://localhost:8000/graphql
run: $(STAMP)
	$(BIN)/crm migrate
	$(BIN)/crm demo
	$(BIN)/crm serve --host 127.0.0.1 --port 8000

## The whole suite: SQLite always; PostgreSQL and Redis when they answer (required with CI=true)
test: $(STAMP)
	$(BIN)/python -m tests.run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schema: $(STAMP)
	$(BIN)/crm export-schema

## 1,000,000-contact benchmark on PostgreSQL; writes BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache
