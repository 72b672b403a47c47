# Accord: `make run` starts the whole stack locally, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
# uv resolves the lock; its pin lives in pyproject.toml's dev extras (so `make install` brings it too).
UV_PIN := $(shell sed -n 's/^ *"\(uv==[^"]*\)".*/\1/p' pyproject.toml)

.DEFAULT_GOAL := help
.PHONY: help install lock run test test-unit test-fast lint typecheck bench-evaluator bench-engine bench-history bench-ingest clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Accord needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

# Everything from the lock (exact versions and hashes, runtime and dev), then Accord itself without
# resolving anything again. Rebuilt whenever the lock or pyproject.toml changes.
$(STAMP): $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Accord and its dev tools from requirements.lock

lock: | $(BIN)/python ## regenerate requirements.lock from pyproject.toml (every platform, Python 3.11+)
	$(BIN)/python -m pip install --quiet '$(UV_PIN)'
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" --quiet --output-file $(LOCK)

run: $(STAMP) ## run PostgreSQL, the broker, migrations and the three services; Ctrl-C stops all
	$(BIN)/accord run

lint: $(STAMP) ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy over shared, services, accord, tests and bench (settings: pyproject.toml)
	$(BIN)/mypy

test: lint typecheck ## lint, typecheck and the whole pytest suite on embedded servers
	$(BIN)/pytest

test-unit: $(STAMP) ## the unit tests only: pure logic, no server started (well under a minute)
	$(BIN)/pytest tests/unit

test-fast: $(STAMP) ## every test but the slow end-to-end ones (starts PostgreSQL and the broker)
	$(BIN)/pytest -m 'not slow'

bench-ingest: $(STAMP) ## ingest against its parse-only ceiling (needs wrk: apt-get install wrk)
	$(BIN)/python bench/ingest.py

bench-evaluator: $(STAMP) ## evaluator throughput, memory and POST-to-event latency
	$(BIN)/python bench/evaluator.py

bench-engine: $(STAMP) ## the evaluator's apply path in-process: CPU per record (bench/engine.py --help)
	$(BIN)/python bench/engine.py --history-days 30 --repeat 3

bench-history: $(STAMP) ## restart and read costs on 30 days of dense history (bench/history.py --help)
	$(BIN)/python bench/history.py

clean: ## remove the venv and local data
	rm -rf $(VENV) .accord .mypy_cache .ruff_cache .pytest_cache .hypothesis
