"""Schedules of the live loop: yesterday's partitions daily from the collector's tables, and a
weekly retrain. Both jobs can also be launched by hand for a date range (a backfill)."""

import dagster as dg
import pandas as pd

from atra_pipeline.defs.common.partitions import configured_symbols, date_keys


class DailyConfig(dg.Config):
    start_date: str = ""
    """First date to materialise; empty: yesterday (UTC)."""
    end_date: str = ""
    """Last date, inclusive; empty: the start date."""
    source: str = "ccxt"
    """Raw source: ccxt (the collector's tables), synthetic or file (see the raw stage)."""


@dg.op(tags={"atra/live": "daily"})
def materialize_days(context: dg.OpExecutionContext, config: DailyConfig) -> list[dict]:
    """Raw, features and labels of the dates, stage by stage for every symbol (``atra run``'s order:
    cross-asset features need every symbol's raw data first), each partition its own run."""
    from atra_pipeline.cli import run_partitions

    start = config.start_date or (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    dates = date_keys(start, config.end_date or start)
    summaries = run_partitions(dates, configured_symbols(),
                               run_config={"resources": {"raw_source": {"config": {"kind": config.source}}}},
                               stages=("raw", "features", "labels"))
    failed = [s for s in summaries if not s["success"] or s["checks_failed"]]
    context.log.info(f"daily {dates}: {len(summaries)} runs, {len(failed)} failed")
    if failed:
        raise dg.Failure(f"{len(failed)} partition runs failed", metadata={"failed": dg.MetadataValue.json(
            [{k: v for k, v in s.items() if k != "run_id"} for s in failed])})
    return summaries


@dg.job(description="Yesterday's (or a date range's) raw, features and labels for every symbol, from the collector.")
def daily():
    materialize_days()


daily_schedule = dg.ScheduleDefinition(job=daily, cron_schedule="30 0 * * *", execution_timezone="UTC",
                                       default_status=dg.DefaultScheduleStatus.STOPPED,
                                       description="00:30 UTC: yesterday's partitions from the collected data.")
weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain", job_name="train", cron_schedule="0 2 * * 1", execution_timezone="UTC",
    run_config={"ops": {"model_candidate": {"config": {"trials": 100}}}},
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 02:00 UTC: a new candidate on every stored label (100 trials), backtested and gated.")
