# One command per job; each works from a fresh clone with only python3, make and the
# package registries.   make demo | make test | make generate | make check | make bench
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# uv must use this machine's Python and never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# The generator's ruff post-hooks must find the pinned ruff first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

GEN_PKG := tensorlake_api_client
GEN_DIR := generated/$(GEN_PKG)

.PHONY: help setup generate check test demo bench mutants clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

setup: $(UV)  ## create .venv from uv.lock (exact versions)
	$(UV) sync --locked --all-extras

generate: $(UV)  ## regenerate generated/ from openapi.yaml (replaces the folder whole), and _sync/ from _async/
	@# The project itself is installed after generation: it needs generated/ to build.
	$(UV) sync --locked --all-extras --no-install-project
	$(BIN)/openapi-spec-validator openapi.yaml
	rm -rf .generate-tmp
	$(BIN)/python scripts/generate.py .generate-tmp/$(GEN_PKG)  # the generator, with templates/
	rm -rf $(GEN_DIR)
	mkdir -p generated
	mv .generate-tmp/$(GEN_PKG) $(GEN_DIR)
	rm -rf .generate-tmp
	$(UV) sync --locked --all-extras
	$(BIN)/python scripts/unasync.py

check: setup  ## _sync/ generated from _async/, template pins, layout (no import cycles), README typing, ruff, mypy --strict
	$(BIN)/python scripts/unasync.py --check
	$(BIN)/pytest -q -p no:cacheprovider -n0 tests/test_templates_pinned.py tests/test_layout.py tests/test_readme_typing.py
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy $(if $(wildcard bench/__init__.py),,-p tensorlake_sandbox -p tensorlake_api_client)

# The whole suite takes about 3 minutes on 2 CPUs (README); a hang anywhere (a test, a thread at exit)
# is stopped after TEST_TIMEOUT seconds with a message instead of blocking CI. pytest-timeout stops
# a single test after 300 s. No third-party pytest plugin is auto-loaded: pyproject.toml's addopts
# names the ones the suite uses (the variable below says the same to any pytest run from here).
TEST_TIMEOUT ?= 900
test: export PYTEST_DISABLE_PLUGIN_AUTOLOAD := 1
test: setup check  ## the whole test suite (what CI runs)
	@rc=0; timeout --kill-after=30 $(TEST_TIMEOUT) $(BIN)/pytest || rc=$$?; \
	if [ $$rc -eq 124 ] || [ $$rc -eq 137 ]; then \
	    echo "make test: the suite did not finish within $(TEST_TIMEOUT) s and was stopped (a hang?)" >&2; \
	fi; exit $$rc

mutants: setup  ## plant the most important bugs one at a time (tests/mutants.py); fails if any survives
	$(BIN)/python -m tests.mutants

demo: $(UV)  ## the main job: write to a process's stdin in a local sandbox (installs only the `local` extra)
	UV_PROJECT_ENVIRONMENT=.venv-demo $(UV) sync --locked --no-dev --extra local
	.venv-demo/bin/python -m tensorlake_sandbox.demo

bench: $(UV)  ## benchmarks in their own .venv-bench (adds the official SDK); writes BENCHMARKS.md
	UV_PROJECT_ENVIRONMENT=.venv-bench $(UV) sync --locked --all-extras --group bench
	.venv-bench/bin/python -m bench

clean:  ## remove the virtualenvs and caches
	rm -rf $(VENV) .venv-bench .venv-demo $(TOOLS) .generate-tmp .mypy_cache .ruff_cache .pytest_cache .hypothesis
