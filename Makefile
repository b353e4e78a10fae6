# Two commands for a newcomer: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench brokers clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/workhive demo

# four pytest processes, one test file each at a time: most tests wait on brokers, not the CPU
test: $(STAMP) brokers
	$(PY) -m pytest -n 4 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy

# Debian packages some tests drive: chromium (the dashboard's browser tests) and pgbouncer (the
# PostgreSQL backend behind a transaction pooler). Needs root; tests skip without them locally.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v pgbouncer >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium pgbouncer >/dev/null; \
	fi

brokers: $(STAMP)
	$(PY) -m tests.brokers

bench: $(STAMP)
	$(PY) -m benchmarks --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
