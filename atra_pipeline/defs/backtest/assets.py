"""Backtest stage: the newest model's walk-forward predictions traded with book costs, and its risk report
(with its trials, placebo studies and the take-every-event baseline traded the same way)."""


import dagster as dg
import pandas as pd

from atra_pipeline.core.backtest.engine import BacktestSettings
from atra_pipeline.core.backtest.report import CHARTS, render_report, report_complete, report_path
from atra_pipeline.core.backtest.runs import (
    backtest_model,
    ledger_audit,
    read_run,
    risk_report_figures,
    settings_for,
    statistics_basis,
    write_risk_metrics,
    write_run,
)
from atra_pipeline.core.models.registry import load_model
from atra_pipeline.defs.common.checks import audit_result, markdown_table, registered_model
from atra_pipeline.defs.common.config import SettingsConfig, settings_config
from atra_pipeline.defs.common.resources import DUCKDB_POOL, AtraDuckDB
from atra_pipeline.defs.labels.assets import labels
from atra_pipeline.defs.raw.assets import RAW_L2

NO_MODEL = "no model in the registry: materialise model_candidate first"


class _BacktestModel(SettingsConfig):
    model_id: str = ""
    """Model to backtest; empty: the newest in the registry."""


BacktestConfig = settings_config(
    BacktestSettings, name="BacktestConfig", base=_BacktestModel,
    derived={"pt_sl": "the model's labels', from its registered spec",
             "strategy": "the model's own, from its registered spec"},
    doc="The model and the starting equity; the strategy, barriers and costs are the model's own "
        "(its registered spec).")


@dg.asset(
    deps=["oof_predictions", labels, RAW_L2],
    group_name="backtest",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    check_specs=[dg.AssetCheckSpec(
        "ledger_consistent", asset="backtest", blocking=True,
        description="Net P&L = gross at mids - slippage - fees - funding on every trade; fills after decisions; "
                    "at most one open position per symbol.")],
)
def backtest(context: dg.AssetExecutionContext, config: BacktestConfig, duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """Decision records, trade ledger and daily equity of the model's out-of-fold predictions traded
    by its own strategy (tables backtest_decisions, backtest_trades, backtest_equity), and its
    stress scenarios (backtest_stress)."""
    with duckdb.get_connection() as conn:
        model_id = registered_model(conn, NO_MODEL, requested=config.model_id)
        record = load_model(conn, model_id)
        run = backtest_model(conn, record, config.settings(base=settings_for(record)))
        write_run(conn, model_id, run)
    ledger = run.ledger
    audit = ledger_audit(ledger)
    context.log.info(f"backtest {model_id}: {run.report}")
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "dagster/row_count": len(ledger), **{k: int(v) for k, v in run.report.items()},
                  "net_pnl": float(ledger["net_pnl"].sum()), "final_equity": float(run.equity.iloc[-1]),
                  "stress": dg.MetadataValue.md(markdown_table(run.stress.drop(columns="description").round(4), 10)),
                  "decisions_by_reason": dg.MetadataValue.md(markdown_table(
                      run.decisions["reason_not_taken"].replace("", "taken").value_counts().rename_axis("reason")
                      .reset_index(), 20)),
                  "ledger_preview": dg.MetadataValue.md(markdown_table(ledger[[
                      "decision_ts", "symbol", "side", "notional", "expected_edge_bps", "exit_reason", "gross_pnl",
                      "slippage_cost", "fee_cost", "net_pnl"]].round(4)))},
        check_results=[audit_result("ledger_consistent", audit)],
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
        model_id = registered_model(conn, NO_MODEL)
        record = load_model(conn, model_id)
        run = read_run(conn, model_id)
        figures, mc = risk_report_figures(conn, record, run)
        write_risk_metrics(conn, model_id, figures)
    table = pd.DataFrame({"metric": list(figures), "value": [f"{v:.6g}" for v in figures.values()]})
    summary = f"{statistics_basis(figures)}\n\n{markdown_table(table, max_rows=len(table))}"
    path = report_path(duckdb.database, model_id)
    render_report(path, f"Risk report {model_id}", summary, run.equity, run.ledger, mc,
                  {"stress scenarios": run.stress}, pd.Series(record.metrics.get("shap_top", {}), dtype=float))
    complete = report_complete(path)
    context.log.info(f"risk report: {path}")
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "report_path": dg.MetadataValue.path(str(path)),
                  "summary": dg.MetadataValue.md(summary),
                  "deflated_sharpe_ratio": figures["deflated_sharpe_ratio"], "sharpe_ratio": figures["sharpe_ratio"],
                  "max_drawdown": figures["max_drawdown"], "days": int(figures["days"]),
                  "statistics_basis": statistics_basis(figures),
                  "min_track_record_days": figures["min_track_record_days"],
                  "track_record_days": figures["track_record_days"], "pbo": figures["pbo"],
                  "probability_of_loss": figures["probability_of_loss"]},
        check_results=[dg.AssetCheckResult(check_name="report_complete", passed=complete,
                                           metadata={"charts": len(CHARTS), "path": str(path)})],
    )
