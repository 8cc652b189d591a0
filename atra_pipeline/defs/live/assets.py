"""Live stage: score the latest decision time with the approved model (asset live_signals)."""

import dagster as dg
import pandas as pd

from atra_pipeline.core.live.observability import live_logger
from atra_pipeline.core.live.scoring import latest_decision_time, score, write_signals
from atra_pipeline.core.models.registry import latest, load_model
from atra_pipeline.core.models.spec import SpecError
from atra_pipeline.defs.common.checks import markdown_table, registered_model
from atra_pipeline.defs.common.config import AtraConfig
from atra_pipeline.defs.common.resources import DUCKDB_POOL, AtraDuckDB


class LiveConfig(AtraConfig):
    decision_ts: str = ""
    """The decision time to score; empty: the latest one every symbol of the model has data for.
    The decision step, symbols, peers and label settings are the approved model's own."""


@dg.asset(
    deps=["approved_model"],
    group_name="live",
    kinds={"duckdb", "lightgbm"},
    pool=DUCKDB_POOL,
    check_specs=[dg.AssetCheckSpec("signals_use_the_approved_model", asset="live_signals", blocking=True,
                                   description="Every signal of this run was scored by the registry's "
                                               "approved model.")],
)
def live_signals(context: dg.AssetExecutionContext, config: LiveConfig, duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """One signal per symbol of the approved model for the latest decision time (table
    live_signals): the event filter on the mid path and, at an event, the feature row from the
    research SQL over the collected data, scored by the approved model."""
    with duckdb.get_connection() as conn:
        model_id = registered_model(conn, "no approved model in the registry: nothing may be scored live", "approved")
        record = load_model(conn, model_id)
        try:
            spec = record.require_spec()
            symbols = list(spec.symbols)
            decision = pd.Timestamp(config.decision_ts) if config.decision_ts else \
                latest_decision_time(conn, symbols, spec.step_s)
            if decision is None:
                raise dg.Failure(f"no collected data for every symbol of {symbols} yet")
            signals = score(conn, decision, record)
        except SpecError as exc:
            raise dg.Failure(str(exc)) from exc
        written = write_signals(conn, signals)
        approved_now = latest(conn, "approved")
    latency = (signals["created_at"] - signals["data_ts"]).dt.total_seconds()
    for row, seconds in zip(signals.itertuples(), latency):
        live_logger(run_id=context.run_id, symbol=row.symbol, model_id=model_id).info(
            "signal", decision_ts=str(decision), cusum_event=bool(row.event), side=int(row.side),
            probability=row.probability, barrier_width=row.barrier_width, latency_s=float(seconds))
    context.log.info(f"live {decision} model {model_id}: {written} new signals, latency {latency.max():.2f} s")
    return dg.MaterializeResult(
        metadata={"decision_ts": str(decision), "model_id": model_id, "new_signals": int(written),
                  "max_signal_latency_s": float(latency.max()),
                  "signals": dg.MetadataValue.md(markdown_table(signals.drop(columns=["created_at"]).round(6)))},
        check_results=[dg.AssetCheckResult(check_name="signals_use_the_approved_model",
                                           passed=bool((signals["model_id"] == approved_now).all()),
                                           metadata={"approved": str(approved_now)})],
    )
