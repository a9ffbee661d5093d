# Two entry points: `make run` (default scenario) and `make test` (the test suite). Each sets up .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test smoke app bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/adfloor run scenarios/default.toml --out runs/default

smoke: $(STAMP)
	$(BIN)/adfloor run scenarios/smoke.toml --out runs/smoke

test: $(STAMP)
	$(BIN)/python -m pytest -q

app: $(STAMP)
	$(BIN)/adfloor app

bench: $(STAMP)
	$(BIN)/python benchmarks/loop.py

clean:
	rm -rf runs .pytest_cache
