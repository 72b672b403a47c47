# Accord: `make run` starts the whole stack locally, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint typecheck bench-evaluator bench-ingest clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Accord needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Accord with its pinned dependencies

run: $(STAMP) ## run PostgreSQL, the broker, migrations and the three services; Ctrl-C stops all
	$(BIN)/accord run

lint: $(STAMP) ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy (strict on shared/)
	$(BIN)/mypy

test: lint typecheck ## lint, typecheck and the whole pytest suite on embedded servers
	$(BIN)/pytest

test-fast: $(STAMP) ## pytest without the slow end-to-end tests
	$(BIN)/pytest -m 'not slow'

bench-ingest: $(STAMP) ## ingest against its parse-only ceiling (needs wrk: apt-get install wrk)
	$(BIN)/python bench/ingest.py

bench-evaluator: $(STAMP) ## evaluator throughput, memory and POST-to-event latency
	$(BIN)/python bench/evaluator.py

clean: ## remove the venv and local data
	rm -rf $(VENV) .accord .mypy_cache .ruff_cache .pytest_cache .hypothesis
