"""The schedules: the weekly retrain of the train job. The daily data are no schedule's op any more
but the automation conditions' (atra_pipeline_tests/defs/common/test_automation.py)."""

from __future__ import annotations

import dagster as dg

from atra_pipeline.definitions import defs


def test_the_weekly_retrain_is_the_only_schedule_and_trains_with_100_trials():
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"weekly_retrain"}
    weekly = schedules["weekly_retrain"]
    assert weekly.job_name == "train" and weekly.cron_schedule == "0 2 * * 1"
    assert weekly.default_status == dg.DefaultScheduleStatus.STOPPED
    request = weekly.evaluate_tick(dg.build_schedule_context()).run_requests[0]
    assert request.run_config["ops"]["model_candidate"]["config"]["trials"] == 100


def test_no_job_runs_other_runs_in_its_op():
    """The old `daily` job's op ran the stages as runs inside its own run, past the run queue and
    the pools; every job now is an asset job (or the collector's op), so every run is the queue's."""
    jobs = {job.name for job in defs.jobs}
    assert "daily" not in jobs
    assert {"main", "train", "live", "trade_tick", "collect"} <= jobs
