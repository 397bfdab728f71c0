# Two entry points: `make demo` (set up, evolve a plain workflow on the local model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PROBLEM ?= A shop sells pens at 17 dollars each. How much do 23 pens cost, plus a 4 dollar delivery fee?

BIGBENCH_DIR := .cache/bigbench
BIGBENCH_TASKS := general_knowledge arithmetic

.PHONY: demo run-example test setup setup-dev lint bench clean bigbench-data sandbox-deps browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools

# The `local` extra builds llama-cpp-python from source the first time (7-10 min on 2 cores).
# `viz` is matplotlib, for `agentforge graph --format png|svg`.
# Editable, as a plain path entry ("compat" mode): the default editable finder costs ~20 ms of imports at
# every interpreter start, a window in which Ctrl-C gets Python's own traceback before `agentforge` can
# answer it. Falls back to the default mode where a setuptools no longer offers "compat".
COMPAT := --config-settings editable_mode=compat

setup: $(BIN)/python sandbox-deps
	$(BIN)/python -m pip install --quiet -e '.[local,viz]' $(COMPAT) 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[local,viz]'

setup-dev: $(BIN)/python sandbox-deps
	$(BIN)/python -m pip install --quiet -e '.[local,viz,dev]' $(COMPAT) 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[local,viz,dev]'

# The main job: evolve a deliberately plain workflow on the arithmetic word problems, with the local model as
# executor and optimizer, then print seed vs best on held-out test tasks and the report's path. Under 10
# minutes on 2 cores (the minutes cap stops proposing; the final test scoring comes after it).
DEMO_EVOLVE ?= --val 30 --test 30 --minibatch 10 --budget generations=3,minutes=7
demo: setup
	$(BIN)/agentforge evolve workflows/arithmetic_plain.yaml --env arithmetic $(DEMO_EVOLVE) --plain

# A single workflow run on the local model.
run-example: setup
	$(BIN)/agentforge run workflows/math_code.yaml --input problem="$(DEMO_PROBLEM)"

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: setup-dev bigbench-data browser-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	AGENTFORGE_BIGBENCH_DIR=$(CURDIR)/$(BIGBENCH_DIR)/benchmark_tasks $(BIN)/python -m pytest -q -rs

# The sandbox confines generated code with bubblewrap (`bwrap`) and refuses to run code without it
# (unless AGENTFORGE_SANDBOX=unconfined). Installed here when missing and we are root with apt-get.
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "bubblewrap (bwrap) is missing: install it (Debian/Ubuntu: sudo apt-get install bubblewrap;" \
	      "Fedora: sudo dnf install bubblewrap). Without it generated code is refused." >&2; \
	  fi; }

# The evolve report is checked in real headless Chromium (Debian's package), installed here when missing
# and we are root with apt-get; without it that one test skips and says why.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-dejavu-core >/dev/null; \
	  else \
	    echo "chromium is missing: the report's browser test will skip (Debian/Ubuntu: sudo apt-get install chromium)" >&2; \
	  fi; }

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
