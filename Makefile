# Two entry points: `make demo` (set up, run a workflow on the local model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PROBLEM ?= A shop sells pens at 17 dollars each. How much do 23 pens cost, plus a 4 dollar delivery fee?

.PHONY: demo test setup setup-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools

# The `local` extra builds llama-cpp-python from source the first time (7-10 min on 2 cores).
setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'

setup-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'

demo: setup
	$(BIN)/agentforge run workflows/math_code.yaml --input problem="$(DEMO_PROBLEM)"

lint: setup-dev
	$(BIN)/ruff check .

test: setup-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -rs

bench: setup-dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
