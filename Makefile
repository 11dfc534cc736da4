# Two commands on a fresh machine with only Python: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint schema bench clean graphiql fuzz load

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## GraphiQL's scripts and styles from the npm registry, to serve them here (needs npm;
## without them the page loads them from a CDN): see api/graphiql.py
graphiql: $(STAMP)
	-$(BIN)/python -m api.graphiql fetch

## Install, migrate, load the demo office, serve GraphiQL on http://localhost:8000/graphql
run: $(STAMP) graphiql
	$(BIN)/crm migrate
	$(BIN)/crm demo
	$(BIN)/crm serve --host 127.0.0.1 --port 8000

## The whole suite: SQLite always; PostgreSQL and Redis when they answer (required with CI=true)
test: $(STAMP) graphiql
	$(BIN)/python -m tests.run

## Fuzzing and the tenancy state machine at FUZZ_SCALE times their everyday examples, new
## inputs every run (pytest's --hypothesis-seed=N pins them); same backends as `make test`
FUZZ_SCALE ?= 10
fuzz: $(STAMP)
	FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m tests.run tests/test_fuzz.py tests/test_tenancy_properties.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schema: $(STAMP)
	$(BIN)/crm export-schema

## 1,000,000-contact benchmark on PostgreSQL; writes BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m bench.run

## 50 concurrent SPA-like clients for 60 s against the demo office on PostgreSQL, with Redis
## and a `crm worker`; zero errors is the target; writes its section of BENCHMARKS.md
## (LOAD_ARGS="--clients 20 --seconds 30 --contacts 50000" and so on: python -m bench.load -h)
LOAD_ARGS ?=
load: $(STAMP)
	$(BIN)/python -m bench.load $(LOAD_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
