"""Backtest one model from the database: its predictions at its label events (out-of-fold, or the
registered model's own on chosen days), their books (SQL), the engine
(:mod:`atra_pipeline.core.backtest`) with the model's own strategy and label settings, excursions,
and the stress scenarios; and write or read the results (tables ``backtest_decisions``,
``backtest_trades``, ``backtest_equity``, ``backtest_stress``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core import metrics
from atra_pipeline.core.backtest import BacktestSettings, daily_equity, run_backtest, trade_returns
from atra_pipeline.core.errors import DataError
from atra_pipeline.core.model import TrainingSet, training_frame
from atra_pipeline.core.model_registry import ModelRecord
from atra_pipeline.core.montecarlo import monte_carlo
from atra_pipeline.core.schema import N_LEVELS
from atra_pipeline.core.sql import bind, load_sql
from atra_pipeline.core.storage import transaction

STRESS = {
    "base": "the settings as given",
    "fees_x2": "taker fee doubled",
    "slippage_x3": "every book three times as far from the decision mid (the strategy sees it too)",
    "latency_plus_1s": "orders arrive one second later",
    "high_volatility": "only events whose barrier width is above its median",
    "low_volatility": "only events whose barrier width is at or below its median",
}
PredictionSource = Literal["oof", "model"]


@dataclass
class BacktestRun:
    decisions: pd.DataFrame
    ledger: pd.DataFrame
    equity: pd.Series
    report: dict
    stress: pd.DataFrame


def settings_for(record: ModelRecord, initial_equity: float = 100_000.0) -> BacktestSettings:
    """The backtest of ``record`` by its own strategy and barriers (its registered spec)."""
    spec = record.require_spec()
    return BacktestSettings(initial_equity, tuple(spec.labels.pt_sl), spec.strategy)


def oof_predictions(conn: duckdb.DuckDBPyConnection, model_id: str) -> pd.DataFrame:
    """The model's out-of-fold probability of each event (the mean over the splits that tested it)."""
    return conn.execute("SELECT ts, symbol, avg(probability) AS probability FROM oof_predictions WHERE model_id = ? "
                        "GROUP BY ts, symbol ORDER BY ts, symbol", [model_id]).fetchdf()


def model_predictions(conn: duckdb.DuckDBPyConnection, record: ModelRecord, start: str, end: str,
                      symbols: list[str] | None = None) -> pd.DataFrame:
    """The registered model's own probability of every labelled event from ``start`` to ``end``
    (inclusive), on the stored feature rows: what it would have said live on those days."""
    symbols = list(symbols or record.require_spec().symbols)
    try:
        frame, _, _ = training_frame(conn, symbols, start, end)
    except ValueError as error:
        raise DataError(f"labels {start}..{end} {','.join(symbols)}", str(error)) from None
    data = TrainingSet.from_frame(frame, record.features)
    return pd.DataFrame({"ts": frame["ts"], "symbol": frame["symbol"],
                         "probability": record.booster().predict(data.X[record.features])})


def candidates(conn: duckdb.DuckDBPyConnection, predictions: pd.DataFrame, latency_ms: float) -> pd.DataFrame:
    sql = load_sql("backtest/candidates.sql")
    conn.register("bt_predictions", predictions[["ts", "symbol", "probability"]])
    try:
        return conn.execute(sql, bind(sql, {"latency_us": int(latency_ms * 1000)})).fetchdf()
    finally:
        conn.unregister("bt_predictions")


def decision_marks(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> pd.DataFrame:
    """Each symbol's mid at each decision time of ``frame`` (``sql/backtest/marks.sql``)."""
    sql = load_sql("backtest/marks.sql")
    conn.register("bt_decision_times", pd.DataFrame({"ts": frame["ts"].drop_duplicates()}))
    try:
        long = conn.execute(sql, bind(sql, {"symbols": sorted(frame["symbol"].unique())})).fetchdf()
    finally:
        conn.unregister("bt_decision_times")
    return long.pivot(index="ts", columns="symbol", values="mid")


def _excursions(conn: duckdb.DuckDBPyConnection, ledger: pd.DataFrame) -> pd.DataFrame:
    if ledger.empty:
        return ledger.assign(mae=np.nan, mfe=np.nan)
    bt_trades = ledger[["symbol", "side", "entry_px", "entry_ts", "exit_ts"]].assign(trade=np.arange(len(ledger)))
    conn.register("bt_trades", bt_trades)
    try:
        found = conn.execute(load_sql("backtest/excursions.sql")).fetchdf().set_index("trade")
    finally:
        conn.unregister("bt_trades")
    return ledger.assign(mae=found["mae"].reindex(range(len(ledger))).to_numpy(),
                         mfe=found["mfe"].reindex(range(len(ledger))).to_numpy())


def _scenario(frame: pd.DataFrame, marks: pd.DataFrame, settings: BacktestSettings, days: tuple) -> dict:
    _, ledger, report = run_backtest(frame, settings, marks) if len(frame) else (None, pd.DataFrame(), {"trades": 0})
    if ledger.empty:
        return {"trades": 0.0}
    equity = daily_equity(ledger, settings.initial_equity, *days)
    returns = equity.pct_change().dropna()
    return {"trades": float(report["trades"]), "total_return": metrics.total_return(returns),
            "sharpe_ratio": metrics.sharpe_ratio(returns), "max_drawdown": metrics.max_drawdown(returns),
            "net_pnl": float(ledger["net_pnl"].sum()), "costs": float(ledger[["slippage_cost", "fee_cost",
                                                                              "funding_cost"]].sum().sum())}


def _with_costs(settings: BacktestSettings, **changes) -> BacktestSettings:
    strategy = settings.strategy
    return replace(settings, strategy=replace(strategy, costs=replace(strategy.costs, **changes)))


def backtest_model(conn: duckdb.DuckDBPyConnection, record: ModelRecord, settings: BacktestSettings | None = None,
                   stress: bool = True, source: PredictionSource = "oof", start: str = "", end: str = "",
                   symbols: list[str] | None = None, between: tuple[pd.Timestamp, pd.Timestamp] | None = None
                   ) -> BacktestRun:
    """Backtest ``record`` (by its own spec unless ``settings`` are given) on its out-of-fold
    predictions (``source="oof"``) or on its own predictions of the labelled events from
    ``start`` to ``end`` (``"model"``), decisions at times in ``between`` (``[from, to)``, if
    given): decisions, ledger with excursions, daily equity, and the stress scenarios of
    :data:`STRESS` (each a full re-run)."""
    settings = settings or settings_for(record)
    predictions = oof_predictions(conn, record.model_id) if source == "oof" else \
        model_predictions(conn, record, start, end, symbols)
    if between is not None:
        predictions = predictions[(predictions["ts"] >= between[0]) & (predictions["ts"] < between[1])]
    latency = settings.strategy.costs.latency_ms
    frame = candidates(conn, predictions, latency)
    if frame.empty:
        raise DataError(f"model {record.model_id}", "no labelled event with a prediction to backtest")
    marks = decision_marks(conn, frame)
    days = (frame["ts"].min(), frame["exit_fill_ts"].max() if frame["exit_fill_ts"].notna().any() else frame["t1"].max())
    decisions, ledger, report = run_backtest(frame, settings, marks)
    ledger = _excursions(conn, ledger)
    equity = daily_equity(ledger, settings.initial_equity, *days)
    rows = []
    if stress:
        slow = _with_costs(settings, latency_ms=latency + 1000)
        median = frame["target"].median()
        scenarios = {
            "base": (frame, settings),
            "fees_x2": (frame, _with_costs(settings, taker_fee_bps=2 * settings.strategy.costs.taker_fee_bps)),
            "slippage_x3": (_widen(frame, 3.0), settings),
            "latency_plus_1s": (candidates(conn, predictions, latency + 1000), slow),
            "high_volatility": (frame[frame["target"] > median], settings),
            "low_volatility": (frame[frame["target"] <= median], settings),
        }
        for name, (data, s) in scenarios.items():
            rows.append({"scenario": name, "description": STRESS[name], **_scenario(data, marks, s, days)})
    return BacktestRun(decisions, ledger, equity, report, pd.DataFrame(rows))


def _widen(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Every book level moved ``factor`` times as far from the decision-time mid (decision, entry
    and exit books)."""
    out = frame.copy()
    for leg, mid in (("dec", "entry_mid"), ("entry", "entry_mid"), ("exit", "exit_mid")):
        for side in ("bid", "ask"):
            for i in range(N_LEVELS):
                col = f"{leg}_{side}_px_{i}"
                out[col] = out[mid] + factor * (out[col] - out[mid])
    return out


def write_run(conn: duckdb.DuckDBPyConnection, model_id: str, run: BacktestRun) -> None:
    """Replace ``model_id``'s rows of the backtest tables in one transaction."""
    trades = run.ledger.assign(model_id=model_id)
    decisions = run.decisions.assign(model_id=model_id)
    equity = pd.DataFrame({"model_id": model_id, "day": run.equity.index.date, "equity": run.equity.to_numpy()})
    stress = run.stress.drop(columns="description").melt(id_vars="scenario", var_name="metric").assign(model_id=model_id)
    with transaction(conn):
        for table, frame in (("backtest_decisions", decisions), ("backtest_trades", trades),
                             ("backtest_equity", equity), ("backtest_stress", stress)):
            conn.execute(f"DELETE FROM {table} WHERE model_id = ?", [model_id])
            conn.register("bt_rows", frame)
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM bt_rows")
            conn.unregister("bt_rows")


def read_run(conn: duckdb.DuckDBPyConnection, model_id: str) -> BacktestRun:
    decisions = conn.execute("SELECT * EXCLUDE (model_id) FROM backtest_decisions WHERE model_id = ? "
                             "ORDER BY decision_ts, symbol", [model_id]).fetchdf()
    ledger = conn.execute("SELECT * EXCLUDE (model_id) FROM backtest_trades WHERE model_id = ? ORDER BY exit_ts",
                          [model_id]).fetchdf()
    eq = conn.execute("SELECT day, equity FROM backtest_equity WHERE model_id = ? ORDER BY day", [model_id]).fetchdf()
    long = conn.execute("SELECT scenario, metric, value FROM backtest_stress WHERE model_id = ?", [model_id]).fetchdf()
    stress = long.pivot(index="scenario", columns="metric", values="value").reset_index()
    return BacktestRun(decisions, ledger, pd.Series(eq["equity"].to_numpy(), index=pd.DatetimeIndex(eq["day"])), {},
                       stress)


def ledger_audit(ledger: pd.DataFrame) -> dict:
    """What the ledger must satisfy: net P&L = gross at mids - slippage - fees - funding on every
    trade, fills at or after their decision and barrier times, no two positions of a symbol open
    at once. ``passed`` is all three."""
    identity = bool(np.allclose(ledger["net_pnl"], ledger["gross_pnl"] - ledger["slippage_cost"] - ledger["fee_cost"]
                                - ledger["funding_cost"], rtol=1e-9, atol=1e-6))
    ordered = bool((ledger["entry_ts"] >= ledger["decision_ts"]).all() and (ledger["exit_ts"] >= ledger["t1"]).all())
    overlap = 0
    for _, trades in ledger.sort_values("entry_ts").groupby("symbol"):
        overlap += int((trades["entry_ts"].to_numpy()[1:] < trades["exit_ts"].to_numpy()[:-1]).sum())
    return {"passed": identity and ordered and not overlap, "pnl_identity": identity, "fills_after_decisions": ordered,
            "overlapping_positions": overlap}


def decision_counts(decisions: pd.DataFrame) -> dict[str, float]:
    """How many decisions there were and why those not taken were skipped (``skipped_for_cost``:
    the expected net edge did not clear the minimum)."""
    reasons = decisions["reason_not_taken"].value_counts() if len(decisions) else pd.Series(dtype=float)
    return {"decisions": float(len(decisions)), "decisions_taken": float(reasons.get("", 0)),
            "skipped_for_cost": float(reasons.get("edge_below_min", 0)),
            "skipped_position_open": float(reasons.get("position_open", 0))}


def risk_figures(run: BacktestRun, trial_sharpes, pbo: float, n_paths: int = 1000) -> tuple[dict, dict]:
    """The risk report's figures of a backtest (return and trade metrics, PSR/DSR against the
    study's trial Sharpe ratios, PBO, Monte Carlo of the trade sequence) and the Monte Carlo result."""
    returns = run.equity.pct_change().dropna()
    figures = {**metrics.summary(returns), **metrics.trade_summary(run.ledger, run.equity),
               "deflated_sharpe_ratio": metrics.deflated_sharpe_ratio(returns, trial_sharpes) if len(returns) > 1
               else float("nan"),
               "expected_max_sharpe": metrics.expected_max_sharpe(trial_sharpes), "trials": float(len(trial_sharpes)),
               "pbo": float(pbo), "days": float(len(returns)), **decision_counts(run.decisions)}
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
