# seedsearch: `make demo` and `make test` set everything up in .venv.
#   make demo    installs the product only (no torch, no test tools), indexes seeds/, searches
#                (with the serve extra: seedsearch serve)
#   make test    adds the test and benchmark extras (torch CPU first, see constraints.txt)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q -c constraints.txt
BASE   := $(VENV)/.installed-base
DEV    := $(VENV)/.installed-dev

.PHONY: install install-dev demo test lint format bench clean

install: $(BASE)

install-dev: $(DEV)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BASE): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e ".[serve]"
	touch $(BASE)

$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev,bench]"
	touch $(BASE) $(DEV)

demo: install
	$(BIN)/seedsearch index --seeds seeds --index index_data
	$(BIN)/seedsearch search "Wer liefert Waffen?" --index index_data

test: install-dev
	$(BIN)/ruff check indexer search tests benchmarks
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check indexer search tests benchmarks
	$(BIN)/ruff format --check indexer search tests benchmarks

format: install-dev
	$(BIN)/ruff format indexer search tests benchmarks
	$(BIN)/ruff check --fix indexer search tests benchmarks

bench: install-dev
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf index_data/gen-* index_data/CURRENT index_data/.lock
