# The two commands of the README. Both set up everything themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.modint-installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

.PHONY: demo test setup

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
