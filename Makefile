# Fresh-machine entry points: `make demo` and `make test` each set up .venv themselves.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: setup system-deps demo test lint type fmt unit check bench reliability clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,sandbox]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages some test tiers need (list: .ci/debian-packages.txt); quick when
# they are there, installs the missing ones when run as root.
system-deps:
	bash .ci/install-debian-packages

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash workflow_examples/demo.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

type: setup
	$(VENV)/bin/mypy

unit: setup system-deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

test: lint type unit

check: test

bench: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/bench_crypt.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/bench_transfer.py

reliability: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/reliability_figures.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
