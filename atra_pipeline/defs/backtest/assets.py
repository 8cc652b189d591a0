"""Backtest stage: the newest model's out-of-fold predictions traded with book costs, and its risk report."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from atra_pipeline.core import metrics
from atra_pipeline.core.backtest import BacktestSettings, CostSettings
from atra_pipeline.core.backtesting import backtest_model, read_run, write_run
from atra_pipeline.core.labelling import LabelSettings
from atra_pipeline.core.model_registry import load_model
from atra_pipeline.core.montecarlo import monte_carlo
from atra_pipeline.core.report import CHARTS, render_report
from atra_pipeline.core.sizing import SizingSettings
from atra_pipeline.defs.checks import markdown_table
from atra_pipeline.defs.labels.assets import labels
from atra_pipeline.defs.raw.assets import raw_l2_snapshots
from atra_pipeline.resources import DUCKDB_POOL, AtraDuckDB

COSTS, SIZING = CostSettings(), SizingSettings()


class BacktestConfig(dg.Config):
    """See :mod:`atra_pipeline.core.backtest` and :mod:`atra_pipeline.core.sizing`."""

    model_id: str = ""
    """Model to backtest; empty: the newest in the registry."""
    threshold: float = 0.5
    pt_sl: list[float] = list(LabelSettings().pt_sl)
    """The labels' barrier multipliers: Kelly's pay-off ratio is pt / sl."""
    initial_equity: float = 100_000.0
    taker_fee_bps: float = COSTS.taker_fee_bps
    latency_ms: float = COSTS.latency_ms
    beyond_book_penalty_bps: float = COSTS.beyond_book_penalty_bps
    funding_bps_per_8h: float = COSTS.funding_bps_per_8h
    kelly_multiplier: float = SIZING.kelly_multiplier
    vol_target: float = SIZING.vol_target
    max_risk_per_trade: float = SIZING.max_risk_per_trade
    max_symbol_exposure: float = SIZING.max_symbol_exposure
    max_gross_exposure: float = SIZING.max_gross_exposure

    def settings(self) -> BacktestSettings:
        d = self.model_dump()
        costs = CostSettings(**{k: d[k] for k in CostSettings.__dataclass_fields__})
        sizing = SizingSettings(**{k: d[k] for k in SizingSettings.__dataclass_fields__})
        return BacktestSettings(self.threshold, self.initial_equity, tuple(self.pt_sl), sizing, costs)


def _model_id(conn, requested: str) -> str:
    if requested:
        return requested
    row = conn.execute("SELECT model_id FROM model_registry ORDER BY created_at DESC, model_id DESC LIMIT 1").fetchall()
    if not row:
        raise dg.Failure("no model in the registry: materialise model_candidate first")
    return row[0][0]


@dg.asset(
    deps=["oof_predictions", labels, raw_l2_snapshots],
    group_name="backtest",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    check_specs=[dg.AssetCheckSpec(
        "ledger_consistent", asset="backtest", blocking=True,
        description="Net P&L = gross at mids - slippage - fees - funding on every trade; fills after decisions; "
                    "at most one open position per symbol.")],
)
def backtest(context: dg.AssetExecutionContext, config: BacktestConfig, duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """Trade ledger and daily equity of the model's out-of-fold predictions (tables backtest_trades,
    backtest_equity), and its stress scenarios (backtest_stress)."""
    with duckdb.get_connection() as conn:
        model_id = _model_id(conn, config.model_id)
        settings = config.settings()
        run = backtest_model(conn, model_id, settings)
        write_run(conn, model_id, run)
    ledger = run.ledger
    identity = np.allclose(ledger["net_pnl"], ledger["gross_pnl"] - ledger["slippage_cost"] - ledger["fee_cost"]
                           - ledger["funding_cost"], rtol=1e-9, atol=1e-6)
    ordered = bool((ledger["entry_fill_ts"] >= ledger["ts"]).all() and (ledger["exit_fill_ts"] >= ledger["t1"]).all())
    overlap = 0
    for _, trades in ledger.sort_values("entry_fill_ts").groupby("symbol"):
        overlap += int((trades["entry_fill_ts"].to_numpy()[1:] < trades["exit_fill_ts"].to_numpy()[:-1]).sum())
    context.log.info(f"backtest {model_id}: {run.report}")
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "dagster/row_count": len(ledger), **{k: int(v) for k, v in run.report.items()},
                  "net_pnl": float(ledger["net_pnl"].sum()), "final_equity": float(run.equity.iloc[-1]),
                  "stress": dg.MetadataValue.md(markdown_table(run.stress.drop(columns="description").round(4), 10)),
                  "ledger_preview": dg.MetadataValue.md(markdown_table(ledger[[
                      "ts", "symbol", "side", "notional", "gross_pnl", "slippage_cost", "fee_cost", "net_pnl"]].round(4)))},
        check_results=[dg.AssetCheckResult(check_name="ledger_consistent", passed=bool(identity and ordered and not overlap),
                                           metadata={"pnl_identity": bool(identity), "fills_after_decisions": ordered,
                                                     "overlapping_positions": overlap})],
    )


@dg.asset(
    deps=["backtest"],
    group_name="backtest",
    kinds={"duckdb", "html"},
    pool=DUCKDB_POOL,
    check_specs=[dg.AssetCheckSpec("report_complete", asset="risk_report", blocking=False,
                                   description="The HTML report exists and holds every chart.")],
)
def risk_report(context: dg.AssetExecutionContext, duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """Risk metrics (table risk_metrics) and a self-contained HTML report under data/reports/."""
    with duckdb.get_connection() as conn:
        model_id = _model_id(conn, "")
        record = load_model(conn, model_id)
        run = read_run(conn, model_id)
        returns = run.equity.pct_change().dropna()
        trial_sharpes = record.metrics.get("trial_sharpes", [])
        figures = {**metrics.summary(returns), **metrics.trade_summary(run.ledger, run.equity),
                   "deflated_sharpe_ratio": metrics.deflated_sharpe_ratio(returns, trial_sharpes) if len(returns) > 1 else float("nan"),
                   "expected_max_sharpe": metrics.expected_max_sharpe(trial_sharpes), "trials": float(len(trial_sharpes)),
                   "pbo": float(record.metrics.get("pbo", float("nan"))), "days": float(len(returns))}
        equity_before = run.ledger["equity_after"] - run.ledger["net_pnl"]
        mc = monte_carlo((run.ledger["net_pnl"] / equity_before).to_numpy(), n_paths=1000)
        figures.update({k: v for k, v in mc.items() if k != "fan"})
        rows = pd.DataFrame({"model_id": model_id, "metric": list(figures), "value": [float(v) for v in figures.values()]})
        conn.execute("BEGIN TRANSACTION")
        conn.execute("DELETE FROM risk_metrics WHERE model_id = ?", [model_id])
        conn.execute("INSERT INTO risk_metrics SELECT * FROM rows")
        conn.execute("COMMIT")
    table = pd.DataFrame({"metric": list(figures), "value": [f"{v:.6g}" for v in figures.values()]})
    summary = markdown_table(table, max_rows=len(table))
    path = Path(duckdb.database).parent / "reports" / f"{model_id}.html"
    render_report(path, f"Risk report {model_id}", summary, run.equity, run.ledger, mc,
                  {"stress scenarios": run.stress}, pd.Series(record.metrics.get("shap_top", {}), dtype=float))
    text = path.read_text()
    complete = all(f'alt="{name}"' in text for name in CHARTS)
    context.log.info(f"risk report: {path}")
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "report_path": dg.MetadataValue.path(str(path)),
                  "summary": dg.MetadataValue.md(summary),
                  "deflated_sharpe_ratio": figures["deflated_sharpe_ratio"], "sharpe_ratio": figures["sharpe_ratio"],
                  "max_drawdown": figures["max_drawdown"], "days": int(len(returns))},
        check_results=[dg.AssetCheckResult(check_name="report_complete", passed=complete,
                                           metadata={"charts": len(CHARTS), "path": str(path)})],
    )
