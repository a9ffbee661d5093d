# Two entry points: `make run` (default scenario) and `make test` (the test suite). Each sets up .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test browser smoke app bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/adfloor run scenarios/default.toml --out runs/default

smoke: $(STAMP)
	$(BIN)/adfloor run scenarios/smoke.toml --out runs/smoke

test: $(STAMP) browser
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest -q

# The real-browser test needs Debian's chromium: install it when missing and we may (root with apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is missing and cannot be installed here: the real-browser test will be skipped"

app: $(STAMP)
	$(BIN)/adfloor app

bench: $(STAMP)
	$(BIN)/python benchmarks/loop.py

clean:
	rm -rf runs .pytest_cache
