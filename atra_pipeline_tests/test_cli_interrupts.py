"""`atra run` stopped from outside: a SIGKILLed run does not hold the duckdb pool for the next
one, and SIGTERM fails the run under way and starts no other (exit 130)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from atra_pipeline.core.storage.paths import PROJECT_ROOT
from atra_pipeline.defs.common.resources import DUCKDB_POOL

pytestmark = pytest.mark.slow  # `atra run` processes, killed and interrupted

DAY = "2024-08-09"


@pytest.fixture
def env(tmp_path) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", home)  # the pool of one, as `make run` has it
    return {**os.environ, "DAGSTER_HOME": str(home), "ATRA_DUCKDB_PATH": str(tmp_path / "atra.duckdb")}


def atra_run(env: dict, symbols: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "atra_pipeline.cli", "run", "--stages", "raw", "--date", DAY,
                             "--symbols", symbols], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_for_a_claimed_slot(env: dict, process: subprocess.Popen) -> str:
    """The run id holding the duckdb pool's slot, once a step of ``process`` has claimed it."""
    deadline = time.monotonic() + 120
    with _instance(env) as instance:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0][-2000:]
            claimed = instance.event_log_storage.get_concurrency_info(DUCKDB_POOL).claimed_slots
            if claimed:
                return claimed[0].run_id
            time.sleep(0.2)
    raise AssertionError("no step claimed the duckdb pool's slot within 120 s")


def _instance(env: dict):
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def test_a_killed_run_does_not_hold_the_pool_for_the_next(env):
    first = atra_run(env, "BTCUSDT,ETHUSDT")
    held_by = wait_for_a_claimed_slot(env, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # before: the next run's step waited for the slot forever ("Step blocked by limit for pool duckdb")
    second = atra_run(env, "BTCUSDT")
    out = second.communicate(timeout=300)[0]
    assert second.returncode == 0, out[-3000:]
    assert f"run {held_by}: its process {first.pid} is gone; marked failed and its pool slots freed" in out
    with _instance(env) as instance:
        assert instance.get_run_by_id(held_by).status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(DUCKDB_POOL).claimed_slots


def test_sigterm_fails_the_run_under_way_and_starts_no_other(env):
    run = atra_run(env, "BTCUSDT,ETHUSDT")
    held_by = wait_for_a_claimed_slot(env, run)
    run.send_signal(signal.SIGTERM)
    out = run.communicate(timeout=120)[0]
    assert run.returncode == 130, out[-3000:]
    assert f"interrupted: run {held_by} (raw {DAY}|BTCUSDT) marked failed; no later run started" in out
    with _instance(env) as instance:
        runs = instance.get_runs()
        assert [r.run_id for r in runs] == [held_by] and runs[0].status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(DUCKDB_POOL).claimed_slots
