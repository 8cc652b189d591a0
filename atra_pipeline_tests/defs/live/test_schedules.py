"""The daily schedule materialises yesterday from the collector's tables, stage by stage; a date
range is a backfill of the same job; the weekly schedule retrains with 100 trials."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from atra_pipeline import cli
from atra_pipeline.definitions import defs
from atra_pipeline.defs.live.schedules import daily


def _run_daily(monkeypatch, config: dict | None = None) -> dict:
    seen = {}

    def fake_run_partitions(dates, symbols, run_config=None, stage_config=None, stages=None):
        seen.update(dates=dates, symbols=symbols, run_config=run_config, stages=stages)
        return [{"stage": "raw", "partition": f"{d}|{s}", "success": True, "checks_failed": []} for d in dates for s in symbols]

    monkeypatch.setattr(cli, "run_partitions", fake_run_partitions)
    result = daily.execute_in_process(run_config={"ops": {"materialize_days": {"config": config or {}}}})
    assert result.success
    return seen


def test_daily_defaults_to_yesterday_from_the_collector(monkeypatch):
    seen = _run_daily(monkeypatch)
    yesterday = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    assert seen["dates"] == [yesterday] and seen["stages"] == ("raw", "features", "labels")
    assert seen["run_config"] == {"resources": {"raw_source": {"config": {"kind": "ccxt"}}}}


def test_a_date_range_is_a_backfill(monkeypatch):
    seen = _run_daily(monkeypatch, {"start_date": "2024-08-01", "end_date": "2024-08-03", "source": "synthetic"})
    assert seen["dates"] == ["2024-08-01", "2024-08-02", "2024-08-03"]


def test_schedules_are_declared():
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["daily_schedule"].cron_schedule == "30 0 * * *" and schedules["daily_schedule"].job_name == "daily"
    weekly = schedules["weekly_retrain"]
    assert weekly.job_name == "train" and weekly.cron_schedule == "0 2 * * 1"
    request = weekly.evaluate_tick(dg.build_schedule_context()).run_requests[0]
    assert request.run_config["ops"]["model_candidate"]["config"]["trials"] == 100
