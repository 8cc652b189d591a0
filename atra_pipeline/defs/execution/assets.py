"""Execution stage: the newest live signals turned into orders through a broker, behind the rails."""

from typing import Literal

import dagster as dg
import pandas as pd

from atra_pipeline.core.execution.brokers import CcxtBroker, PaperBroker, reconcile
from atra_pipeline.core.execution.executor import trade_step
from atra_pipeline.core.execution.rails import RiskLimits, limit_audit
from atra_pipeline.core.live.observability import live_logger
from atra_pipeline.core.live.scoring import latest_signals
from atra_pipeline.core.models.registry import latest, load_model
from atra_pipeline.core.strategy.fills import CostSettings
from atra_pipeline.defs.common.checks import audit_result, markdown_table
from atra_pipeline.defs.common.config import SettingsConfig, settings_config
from atra_pipeline.defs.common.resources import DUCKDB_POOL, AtraDuckDB


class _Broker(SettingsConfig):
    broker: Literal["paper", "ccxt"] = "paper"
    """paper: fills simulated on the collected books; ccxt: orders sent to the exchange."""
    exchange: str = "binance"
    """The ccxt exchange id (broker ccxt)."""
    sandbox: bool = True
    """Trade on the exchange's testnet (broker ccxt)."""
    initial_equity: float = 100_000.0
    """The paper account's starting equity."""


ExecutionConfig = settings_config(
    RiskLimits, name="ExecutionConfig", base=_Broker,
    doc="The broker and the safety rails its orders pass (core RiskLimits).")


@dg.asset(
    deps=["live_signals"],
    group_name="execution",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec("orders_within_limits", asset="execution", blocking=True,
                          description="No filled order above max_order_notional; "
                                      "no position above max_position_notional."),
        dg.AssetCheckSpec("ledger_reconciles", asset="execution", blocking=True,
                          description="The fills ledger's positions equal the broker's."),
    ],
)
def execution(context: dg.AssetExecutionContext, config: ExecutionConfig, duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """One step of the live executor (:func:`atra_pipeline.core.execution.executor.trade_step`): exits of the
    open positions, the marked kill switch, then the strategy's decisions on the newest decision
    time's signals of the approved model (tables live_decisions, live_positions, orders, fills,
    risk_events)."""
    limits = config.settings()
    with duckdb.get_connection() as conn:
        approved = latest(conn, "approved")
        record = load_model(conn, approved) if approved else None
        costs = record.require_spec().strategy.costs if record else CostSettings()
        broker = PaperBroker(conn, costs, initial_equity=config.initial_equity) if config.broker == "paper" \
            else CcxtBroker(config.exchange, config.sandbox)
        signals = latest_signals(conn)
        signals = signals[signals["model_id"] == approved]
        step = trade_step(conn, broker, record, signals, pd.Timestamp.now(tz="UTC").tz_localize(None), limits, approved)
        counts = step.flat()
        limits_held = limit_audit(conn, broker.name, limits)
        mismatches = reconcile(conn, broker)
        recent = conn.execute("SELECT * FROM orders ORDER BY created_at DESC LIMIT 10").fetchdf()
    figures = {k: (v if isinstance(v, (int, float)) else str(v)) for k, v in counts.items()}
    live_logger(run_id=context.run_id, model_id=str(approved), broker=broker.name).info("execution", **figures)
    context.log.info(f"execution ({broker.name}): {counts}")
    return dg.MaterializeResult(
        metadata={"broker": broker.name, **figures,
                  "signals": len(signals), "recent_orders": dg.MetadataValue.md(markdown_table(recent))},
        check_results=[
            audit_result("orders_within_limits", limits_held),
            dg.AssetCheckResult(check_name="ledger_reconciles", passed=not mismatches,
                                metadata={"mismatches": dg.MetadataValue.json(
                                    {k: list(v) for k, v in mismatches.items()})}),
        ],
    )
