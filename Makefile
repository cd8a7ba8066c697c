# Two entry points: `make demo` (set up from scratch, then serve) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench serve clean lock

## demo: install, simulate, apply and materialise Feast, train, register, then serve on localhost
demo: install
	$(BIN)/nba demo
	$(BIN)/python -m service

## test: install, then run lint, type checks and the whole test suite
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy service training tests
	$(BIN)/pytest

## install: project-local virtual environment with the locked versions
install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" "uv==0.13.8"
	$(UV) pip sync --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## serve: start the API on the current champion (after `make demo` ran once)
serve: install
	$(BIN)/python -m service

## bench: the benchmark suite (floor, HTTP at fixed rates and max, materialisation, training);
## builds the demo world first when missing; writes bench-results/bench-*.json and .md
bench: install
	@command -v wrk >/dev/null || { echo "installing Debian's wrk"; apt-get install -y -qq wrk >/dev/null; }
	@test -f data/decisions.parquet || $(BIN)/nba demo
	$(BIN)/python -m tests.benchmarks $(BENCH_ARGS)

## lock: re-resolve requirements.lock from pyproject.toml (run after changing dependencies)
lock:
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet "uv==0.13.8"; }
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(UV) pip compile pyproject.toml --python-version 3.11 -o requirements-runtime.lock

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy service training tests

## clean: remove generated data, stores and models (keeps the virtual environment)
clean:
	rm -rf data mlruns feature_repo/data models/*/ test-artifacts bench-results
