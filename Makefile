# Two commands for a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/derivcheck verify
	$(BIN)/derivcheck derive dense

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest derivcheck tests

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_localize.py
	$(BIN)/python benchmarks/bench_symbolic.py
	$(BIN)/python benchmarks/bench_conv.py
	$(BIN)/python benchmarks/bench_expressions.py
	$(BIN)/python benchmarks/bench_trust.py
	$(BIN)/python benchmarks/bench_readability.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
