# Two entry points: `make demo` (set up, run a workflow on the local model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PROBLEM ?= A shop sells pens at 17 dollars each. How much do 23 pens cost, plus a 4 dollar delivery fee?

BIGBENCH_DIR := .cache/bigbench
BIGBENCH_TASKS := general_knowledge arithmetic

.PHONY: demo test setup setup-dev lint bench clean bigbench-data

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

test: setup-dev bigbench-data
	$(BIN)/ruff check .
	AGENTFORGE_BIGBENCH_DIR=$(CURDIR)/$(BIGBENCH_DIR)/benchmark_tasks $(BIN)/python -m pytest -q -rs

# BIG-bench's task files for the real-task test: fetched from PyPI's `bigbench` sdist (358 MB, with
# the base interpreter's pip: pip >= 26 refuses this sdist), only the tasks the tests read kept, never
# committed.
bigbench-data:
	@test -d $(BIGBENCH_DIR)/benchmark_tasks || { \
	  mkdir -p $(BIGBENCH_DIR) && \
	  $(PYTHON) -m pip download --quiet --no-deps bigbench==1.0.0 -d $(BIGBENCH_DIR)/sdist && \
	  tar xzf $(BIGBENCH_DIR)/sdist/bigbench-1.0.0.tar.gz -C $(BIGBENCH_DIR) --strip-components=2 \
	    --wildcards $(foreach t,$(BIGBENCH_TASKS),'*/bigbench/benchmark_tasks/$(t)/*') && \
	  rm -rf $(BIGBENCH_DIR)/sdist; } || echo "BIG-bench task files unavailable: the real-task test will be skipped"

bench: setup-dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
