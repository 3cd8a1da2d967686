# The commands of the README. Each sets up everything itself on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.modint-installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

.PHONY: demo test test-fast lint setup

setup: $(STAMP)

# torch==2.13.0 first: it is the local CPU wheel; a plain `torch` would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(BIN)/modint diagnose --out runs/demo

test: $(STAMP)
	$(OFFLINE) $(BIN)/python -m pytest -q

# The developer's loop: everything but the end-to-end tests marked slow (CI runs them all).
test-fast: $(STAMP)
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/python -m ruff --version >/dev/null 2>&1 || $(BIN)/python -m pip install -q ruff
	$(BIN)/python -m ruff check src tests scripts
