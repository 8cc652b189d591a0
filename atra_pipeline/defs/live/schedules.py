"""The weekly retrain: a new candidate on every stored label, backtested and gated.

The daily data (raw, features, labels of the latest day) are not a schedule: the automation
conditions of their groups (``defs/common/automation.py``) request them, through the run queue."""

import dagster as dg

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain", job_name="train", cron_schedule="0 2 * * 1", execution_timezone="UTC",
    run_config={"ops": {"model_candidate": {"config": {"trials": 100}}}},
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 02:00 UTC: a new candidate on every stored label (100 trials), backtested and gated.")
