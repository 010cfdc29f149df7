# seedsearch: `make demo` and `make test` set everything up in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,bench]"
	touch $(STAMP)

demo: install
	$(BIN)/seedsearch index --seeds seeds --index index_data
	$(BIN)/seedsearch search "Wer liefert Waffen?" --index index_data

test: install
	$(BIN)/ruff check indexer search tests benchmarks
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check indexer search tests benchmarks
	$(BIN)/ruff format --check indexer search tests benchmarks

format: install
	$(BIN)/ruff format indexer search tests benchmarks
	$(BIN)/ruff check --fix indexer search tests benchmarks

bench: install
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf index_data/gen-* index_data/CURRENT index_data/.lock
