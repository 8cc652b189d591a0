"""Sensors of the live loop: launch the live job for each new decision time or newly approved model,
a trade tick whenever open positions have new snapshots to judge, and alert on failures."""

import dagster as dg

from atra_pipeline.core.execution.executor import newest_unjudged_snapshot
from atra_pipeline.core.live.scoring import latest_decision_time
from atra_pipeline.core.models.registry import latest, load_model
from atra_pipeline.core.models.spec import SpecError
from atra_pipeline.defs.common.resources import AtraDuckDB

live_job = dg.define_asset_job("live", selection=["live_signals", "execution"],
                               description="Score the latest decision time with the approved model, then one step of "
                                           "the executor: exits, kill switch, entries.")
tick_job = dg.define_asset_job("trade_tick", selection=["execution"],
                               description="One step of the executor between decision times: the open positions' "
                                           "exits on the new snapshots and the marked kill switch.")
DECISION_TAG, MODEL_TAG = "atra/decision_ts", "atra/model_id"
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]


@dg.sensor(job=live_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.STOPPED)
def live_sensor(context: dg.SensorEvaluationContext, duckdb: AtraDuckDB):
    """Launch ``live`` when collected data reach a decision time (or a model is approved) that has
    no signals yet. A decision time with a run queued or in progress is not launched again; one
    whose run failed has no signals, so the next tick launches it again (the retry)."""
    with duckdb.get_connection() as conn:
        model_id = latest(conn, "approved")
        if model_id is None:
            return dg.SkipReason("no approved model")
        try:  # the run scores on the model's own grid and symbols: look for its decision times
            spec = load_model(conn, model_id).require_spec()
        except SpecError as exc:
            return dg.SkipReason(str(exc))
        decision = latest_decision_time(conn, list(spec.symbols), spec.step_s)
        done = conn.execute("SELECT count(*) FROM live_signals WHERE decision_ts = ? AND model_id = ?",
                            [decision, model_id]).fetchall()[0][0] if decision is not None and model_id else 0
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
    from atra_pipeline.core.live.observability import LIVE_FAILURES, live_logger

    LIVE_FAILURES.inc()
    live_logger(run_id=context.dagster_run.run_id, job="live").error("live run failed",
                                                                       message=context.failure_event.message)
    context.log.error(f"live run {context.dagster_run.run_id} failed: {context.failure_event.message}")


@dg.sensor(job=tick_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.STOPPED)
def exit_sensor(context: dg.SensorEvaluationContext, duckdb: AtraDuckDB):
    """Launch ``trade_tick`` while positions are open and snapshots newer than the last judged one
    have landed: the exits and the kill switch run on every tick, not only at decision times."""
    with duckdb.get_connection() as conn:
        waiting = newest_unjudged_snapshot(conn)
    if waiting is None:
        return dg.SkipReason("no open position with snapshots to judge")
    if context.instance.get_runs(dg.RunsFilter(job_name="trade_tick", statuses=ACTIVE)):
        return dg.SkipReason("a trade tick is in progress")
    context.update_cursor(waiting.isoformat())
    return dg.RunRequest(run_key=f"tick|{waiting.isoformat()}")
