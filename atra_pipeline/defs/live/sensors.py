"""Sensors of the live job: launch it for each new decision time or newly approved model, and
alert on its failures."""

import dagster as dg

from atra_pipeline.core.features.registry import DECISION_STEP_S
from atra_pipeline.core.live import latest_decision_time
from atra_pipeline.core.model_registry import latest
from atra_pipeline.partitions import configured_symbols
from atra_pipeline.resources import AtraDuckDB

live_job = dg.define_asset_job("live", selection=["live_signals"],
                               description="Score the latest decision time with the approved model.")
DECISION_TAG, MODEL_TAG = "atra/decision_ts", "atra/model_id"
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]


@dg.sensor(job=live_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.STOPPED)
def live_sensor(context: dg.SensorEvaluationContext, duckdb: AtraDuckDB):
    """Launch ``live`` when collected data reach a decision time (or a model is approved) that has
    no signals yet. A decision time with a run queued or in progress is not launched again; one
    whose run failed has no signals, so the next tick launches it again (the retry)."""
    step_s = DECISION_STEP_S  # LiveConfig's default: the run it launches scores on the same grid
    with duckdb.get_connection() as conn:
        model_id = latest(conn, "approved")
        decision = latest_decision_time(conn, configured_symbols(), step_s)
        done = conn.execute("SELECT count(*) FROM live_signals WHERE decision_ts = ? AND model_id = ?",
                            [decision, model_id]).fetchall()[0][0] if decision is not None and model_id else 0
    if model_id is None:
        return dg.SkipReason("no approved model")
    if decision is None:
        return dg.SkipReason("no collected data for every symbol yet")
    key = f"{decision.isoformat()}|{model_id}"
    if done:
        context.update_cursor(key)
        return dg.SkipReason(f"signals for {key} already written")
    tags = {DECISION_TAG: decision.isoformat(), MODEL_TAG: model_id}
    if context.instance.get_runs(dg.RunsFilter(job_name="live", statuses=ACTIVE, tags=tags)):
        return dg.SkipReason(f"a live run for {key} is in progress")
    failed = len(context.instance.get_runs(dg.RunsFilter(job_name="live", statuses=[dg.DagsterRunStatus.FAILURE],
                                                         tags=tags)))
    context.update_cursor(key)
    # the run key makes Dagster launch each (decision, model, attempt) once, however many ticks
    # ask; a failed attempt makes the next one a new key: the retry
    return dg.RunRequest(run_key=f"{key}|attempt-{failed + 1}",
                         run_config={"ops": {"live_signals": {"config": {"decision_ts": decision.isoformat()}}}},
                         tags=tags)


@dg.run_failure_sensor(monitored_jobs=[live_job], default_status=dg.DefaultSensorStatus.STOPPED)
def live_failure_alert(context: dg.RunFailureSensorContext):
    """Alert on every failed live run: an error log line and the failure counter."""
    from atra_pipeline.core.observability import LIVE_FAILURES, live_logger

    LIVE_FAILURES.inc()
    live_logger(run_id=context.dagster_run.run_id, job="live").error("live run failed",
                                                                       message=context.failure_event.message)
    context.log.error(f"live run {context.dagster_run.run_id} failed: {context.failure_event.message}")
