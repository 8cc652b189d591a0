"""Backtest one model from the database: its out-of-fold candidates and their books (SQL), the
engine (:mod:`atra_pipeline.core.backtest`), excursions, and the stress scenarios; and write or
read the results (tables ``backtest_trades``, ``backtest_equity``, ``backtest_stress``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core import metrics
from atra_pipeline.core.backtest import BacktestSettings, daily_equity, run_backtest, trade_returns
from atra_pipeline.core.montecarlo import monte_carlo
from atra_pipeline.core.schema import N_LEVELS
from atra_pipeline.core.sql import bind, load_sql
from atra_pipeline.core.storage import transaction

STRESS = {
    "base": "the settings as given",
    "fees_x2": "taker fee doubled",
    "slippage_x3": "fills three times as far from the decision mid",
    "latency_plus_1s": "orders arrive one second later",
    "high_volatility": "only events whose barrier width is above its median",
    "low_volatility": "only events whose barrier width is at or below its median",
}


@dataclass
class BacktestRun:
    ledger: pd.DataFrame
    equity: pd.Series
    report: dict
    stress: pd.DataFrame


def candidates(conn: duckdb.DuckDBPyConnection, model_id: str, settings: BacktestSettings) -> pd.DataFrame:
    sql = load_sql("backtest/candidates.sql")
    params = {"model_id": model_id, "threshold": settings.threshold,
              "latency_us": int(settings.costs.latency_ms * 1000)}
    return conn.execute(sql, bind(sql, params)).fetchdf()


def _excursions(conn: duckdb.DuckDBPyConnection, ledger: pd.DataFrame) -> pd.DataFrame:
    if ledger.empty:
        return ledger.assign(mae=np.nan, mfe=np.nan)
    bt_trades = ledger[["symbol", "side", "entry_price", "entry_fill_ts", "exit_fill_ts"]].assign(trade=np.arange(len(ledger)))
    conn.register("bt_trades", bt_trades)
    try:
        found = conn.execute(load_sql("backtest/excursions.sql")).fetchdf().set_index("trade")
    finally:
        conn.unregister("bt_trades")
    return ledger.assign(mae=found["mae"].reindex(range(len(ledger))).to_numpy(),
                         mfe=found["mfe"].reindex(range(len(ledger))).to_numpy())


def _scenario(frame: pd.DataFrame, settings: BacktestSettings, days: tuple) -> dict:
    ledger, report = run_backtest(frame, settings) if len(frame) else (pd.DataFrame(), {"trades": 0})
    if ledger.empty:
        return {"trades": 0.0}
    equity = daily_equity(ledger, settings.initial_equity, *days)
    returns = equity.pct_change().dropna()
    return {"trades": float(report["trades"]), "total_return": metrics.total_return(returns),
            "sharpe_ratio": metrics.sharpe_ratio(returns), "max_drawdown": metrics.max_drawdown(returns),
            "net_pnl": float(ledger["net_pnl"].sum()), "costs": float(ledger[["slippage_cost", "fee_cost",
                                                                              "funding_cost"]].sum().sum())}


def backtest_model(conn: duckdb.DuckDBPyConnection, model_id: str, settings: BacktestSettings = BacktestSettings(),
                   stress: bool = True) -> BacktestRun:
    """The base backtest with excursions and daily equity over the model's events' days, and the
    stress scenarios of :data:`STRESS` (each a full re-run)."""
    frame = candidates(conn, model_id, settings)
    if frame.empty:
        raise ValueError(f"model {model_id}: no out-of-fold prediction above the threshold {settings.threshold}")
    days = (frame["ts"].min(), frame["t1"].max())
    ledger, report = run_backtest(frame, settings)
    ledger = _excursions(conn, ledger)
    equity = daily_equity(ledger, settings.initial_equity, *days)
    rows = []
    if stress:
        slow = replace(settings, costs=replace(settings.costs, latency_ms=settings.costs.latency_ms + 1000))
        median = frame["target"].median()
        scenarios = {
            "base": (frame, settings),
            "fees_x2": (frame, replace(settings, costs=replace(settings.costs, taker_fee_bps=2 * settings.costs.taker_fee_bps))),
            "slippage_x3": (_widen(frame, 3.0), settings),
            "latency_plus_1s": (candidates(conn, model_id, slow), slow),
            "high_volatility": (frame[frame["target"] > median], settings),
            "low_volatility": (frame[frame["target"] <= median], settings),
        }
        for name, (data, s) in scenarios.items():
            rows.append({"scenario": name, "description": STRESS[name], **_scenario(data, s, days)})
    return BacktestRun(ledger, equity, report, pd.DataFrame(rows))


def _widen(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Every book level moved ``factor`` times as far from the decision-time mid (entry and exit)."""
    out = frame.copy()
    for leg, mid in (("entry", "entry_mid"), ("exit", "exit_mid")):
        for side in ("bid", "ask"):
            for i in range(N_LEVELS):
                col = f"{leg}_{side}_px_{i}"
                out[col] = out[mid] + factor * (out[col] - out[mid])
    return out


def write_run(conn: duckdb.DuckDBPyConnection, model_id: str, run: BacktestRun) -> None:
    """Replace ``model_id``'s rows of the backtest tables in one transaction."""
    trades = run.ledger.assign(model_id=model_id)
    equity = pd.DataFrame({"model_id": model_id, "day": run.equity.index.date, "equity": run.equity.to_numpy()})
    stress = run.stress.drop(columns="description").melt(id_vars="scenario", var_name="metric").assign(model_id=model_id)
    with transaction(conn):
        for table, frame in (("backtest_trades", trades), ("backtest_equity", equity), ("backtest_stress", stress)):
            conn.execute(f"DELETE FROM {table} WHERE model_id = ?", [model_id])
            conn.register("bt_rows", frame)
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM bt_rows")
            conn.unregister("bt_rows")


def read_run(conn: duckdb.DuckDBPyConnection, model_id: str) -> BacktestRun:
    ledger = conn.execute("SELECT * EXCLUDE (model_id) FROM backtest_trades WHERE model_id = ? ORDER BY exit_fill_ts",
                          [model_id]).fetchdf()
    eq = conn.execute("SELECT day, equity FROM backtest_equity WHERE model_id = ? ORDER BY day", [model_id]).fetchdf()
    long = conn.execute("SELECT scenario, metric, value FROM backtest_stress WHERE model_id = ?", [model_id]).fetchdf()
    stress = long.pivot(index="scenario", columns="metric", values="value").reset_index()
    return BacktestRun(ledger, pd.Series(eq["equity"].to_numpy(), index=pd.DatetimeIndex(eq["day"])), {}, stress)


def ledger_audit(ledger: pd.DataFrame) -> dict:
    """What the ledger must satisfy: net P&L = gross at mids - slippage - fees - funding on every
    trade, fills at or after their decision and barrier times, no two positions of a symbol open
    at once. ``passed`` is all three."""
    identity = bool(np.allclose(ledger["net_pnl"], ledger["gross_pnl"] - ledger["slippage_cost"] - ledger["fee_cost"]
                                - ledger["funding_cost"], rtol=1e-9, atol=1e-6))
    ordered = bool((ledger["entry_fill_ts"] >= ledger["ts"]).all() and (ledger["exit_fill_ts"] >= ledger["t1"]).all())
    overlap = 0
    for _, trades in ledger.sort_values("entry_fill_ts").groupby("symbol"):
        overlap += int((trades["entry_fill_ts"].to_numpy()[1:] < trades["exit_fill_ts"].to_numpy()[:-1]).sum())
    return {"passed": identity and ordered and not overlap, "pnl_identity": identity, "fills_after_decisions": ordered,
            "overlapping_positions": overlap}


def risk_figures(run: BacktestRun, trial_sharpes, pbo: float, n_paths: int = 1000) -> tuple[dict, dict]:
    """The risk report's figures of a backtest (return and trade metrics, PSR/DSR against the
    study's trial Sharpe ratios, PBO, Monte Carlo of the trade sequence) and the Monte Carlo result."""
    returns = run.equity.pct_change().dropna()
    figures = {**metrics.summary(returns), **metrics.trade_summary(run.ledger, run.equity),
               "deflated_sharpe_ratio": metrics.deflated_sharpe_ratio(returns, trial_sharpes) if len(returns) > 1
               else float("nan"),
               "expected_max_sharpe": metrics.expected_max_sharpe(trial_sharpes), "trials": float(len(trial_sharpes)),
               "pbo": float(pbo), "days": float(len(returns))}
    mc = monte_carlo(trade_returns(run.ledger).to_numpy(), n_paths=n_paths)
    figures.update({k: v for k, v in mc.items() if k != "fan"})
    return figures, mc


def write_risk_metrics(conn: duckdb.DuckDBPyConnection, model_id: str, figures: dict) -> None:
    """Replace ``model_id``'s rows of ``risk_metrics`` in one transaction."""
    rows = pd.DataFrame({"model_id": model_id, "metric": list(figures), "value": [float(v) for v in figures.values()]})
    with transaction(conn):
        conn.execute("DELETE FROM risk_metrics WHERE model_id = ?", [model_id])
        conn.register("risk_rows", rows)
        conn.execute("INSERT INTO risk_metrics SELECT * FROM risk_rows")
        conn.unregister("risk_rows")
