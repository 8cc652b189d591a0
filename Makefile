# Two entry points for a fresh machine (Python 3.11 and make): `make run` and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: run test test-fast ui demo install clean

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
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial" --durations=10
	$(BIN)/python -m pytest -m serial --durations=10

## The quick loop while editing: the suite without the tests marked slow (servers, processes, the
## whole pipeline) or serial, on two workers. `make test` still runs everything.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow and not serial" --durations=10

## From research to paper trading (README, "Demonstration"): a study of a market with a strong
## signal, which the gate approves, then a replay of the next day's paper trading with the approved
## model. Its own database and Dagster instance under data/demo (`make ui DEMO=1` opens them).
DEMO_DIR := $(CURDIR)/data/demo
DEMO_START := 2024-08-02
DEMO_END := 2024-08-05
DEMO_TRADE := 2024-08-06
DEMO_ENV := DAGSTER_HOME=$(DEMO_DIR)/home ATRA_DUCKDB_PATH=$(DEMO_DIR)/atra.duckdb
demo: $(BIN)/.installed
	mkdir -p $(DEMO_DIR)/home && cp .dagster_home/dagster.yaml $(DEMO_DIR)/home/
	$(DEMO_ENV) $(BIN)/atra run --start $(DEMO_START) --end $(DEMO_END) --config demo/strong_signal.yaml
	$(DEMO_ENV) $(BIN)/atra run --date $(DEMO_TRADE) --stages raw --config demo/strong_signal.yaml
	$(DEMO_ENV) $(BIN)/atra replay --model approved --date $(DEMO_TRADE) --start 00:00 --end 06:00

## The Dagster UI on http://127.0.0.1:3000 over the same instance and database.
ui: $(BIN)/.installed
	$(if $(DEMO),$(DEMO_ENV)) $(BIN)/dagster dev -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV) data .dagster_home/history .dagster_home/storage .dagster_home/logs .dagster_home/schedules
