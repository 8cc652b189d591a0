"""Several partitions in concurrent multi-step, multi-process runs share one DuckDB file:
the `duckdb` pool (limit 1 in the instance config) keeps their database steps apart."""

from __future__ import annotations

import os
import shutil

import dagster as dg
import pytest

from atra_pipeline.core.storage.paths import PROJECT_ROOT
from atra_pipeline_tests.support.dagster_cli import materialize_all
from atra_pipeline_tests.support.materialize import count_rows

SYMBOLS = ["BTCUSDT", "ETHUSDT"]  # two runs at once are enough to contend for the file
INTERVAL_MS = 10_000  # 8,640 snapshots a day keeps the runs short


def _step_intervals(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float, str]]:
    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            ends[event.step_key] = record.timestamp
    return [(starts[k], ends[k], f"{run_id[:8]}:{k}") for k in starts]


@pytest.mark.serial  # the step events' order is judged: another test's load would delay their writing
def test_parallel_multiprocess_runs_never_overlap_duckdb_steps(tmp_path):
    """Two `dagster asset materialize` processes at once, one partition each, as a user (or a
    run launcher) would start them; every step runs in its own process (multiprocess executor)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    db = tmp_path / "atra.duckdb"
    env = {**os.environ, "DAGSTER_HOME": str(home), "ATRA_DUCKDB_PATH": str(db),
           "ATRA_EXECUTOR": "multiprocess"}  # a process per step: the pool must keep them apart
    run_config = {"resources": {"raw_source": {"config": {"interval_ms": INTERVAL_MS}}}}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_run_records()  # create the instance's storage once, before processes race for it
    outputs = materialize_all("raw_l2_snapshots,raw_trades", [f"2024-08-08|{s}" for s in SYMBOLS], env, run_config)
    for out in outputs:
        assert "database is locked" not in out.lower() and "could not set lock" not in out.lower()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
        assert len(runs) == len(SYMBOLS) and all(r.dagster_run.is_success for r in runs)
        intervals = sorted(i for r in runs for i in _step_intervals(instance, r.dagster_run.run_id))
        blocked = sum("blocked by limit for pool duckdb" in (rec.message or "")
                      for r in runs for rec in instance.all_logs(r.dagster_run.run_id))
        spans = sorted((r.start_time, r.end_time) for r in runs)

    steps = {key.split(":", 1)[1] for *_, key in intervals}
    # the raw step (both tables) and its Great Expectations checks in every run, each its own process
    assert "raw_partition" in steps and len(steps) >= 2 and len(intervals) == len(steps) * len(SYMBOLS)
    for (_, end, a), (start, _, b) in zip(intervals, intervals[1:]):
        assert start >= end, f"{a} and {b} held the database at the same time"
    # runs that were alive at the same time contended for the database, and the pool made them
    # wait (on a loaded machine the processes may also start so far apart that they never meet)
    if any(later_start < end for (_, end), (later_start, _) in zip(spans, spans[1:])):
        assert blocked > 0
    for symbol in SYMBOLS:
        assert count_rows(db, "raw_l2_snapshots", symbol) == 86_400_000 // INTERVAL_MS
