# Two entry points for a fresh machine (Python 3.11 and make): `make run` and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: run test ui install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Materialise the main job on the embedded defaults (synthetic data, data/atra.duckdb).
run: $(BIN)/.installed
	$(BIN)/atra run

## The whole test suite: on two workers (a test file stays on one: module fixtures are shared),
## then the tests marked serial alone (the service end to end, and the pool test that judges how other
## processes' steps interleave): the other worker's load would make their timeouts and orderings flaky.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -m serial

## The Dagster UI on http://127.0.0.1:3000 over the same instance and database.
ui: $(BIN)/.installed
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV) data .dagster_home/history .dagster_home/storage .dagster_home/logs .dagster_home/schedules
