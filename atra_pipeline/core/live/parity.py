"""Trade-by-trade comparison of a backtest ledger with the live path's trades of the same model and
decisions (a replay): the same trades (symbol, side, entry decision time, exit reason), their
prices within a stated tolerance, the total P&L within 1%. Differences are listed per trade,
never averaged away.

Tolerance: both paths price a fill with the same book walk (:func:`atra_pipeline.core.strategy.fills.walk_book`)
on the same snapshot (the first at or after the order time plus the latency), so prices agree to
float precision; quantities differ only by how equity is summed (the backtest adds trade P&L, the
paper account adds cash flows and marks positions): held to a relative 1e-6 here (the summary
reports the largest gap; 0 on the real capture). Probabilities differ by the
feature rows' float noise (the live row is rebuilt from raw data, the backtest reads the stored
one; 1e-12 apart at most), which moves a decision only at an exact tie with the minimum edge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.backtest.runs import BacktestRun, backtest_model
from atra_pipeline.core.live.replay import BROKER, live_trades, replay, time_of_day
from atra_pipeline.core.models.registry import ModelRecord

KEY = ["decision_ts", "symbol"]
PRICE_RTOL = 1e-9
QTY_RTOL = 1e-6
PNL_RTOL = 0.01


def compare(backtest: pd.DataFrame, live: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``(table, summary)``: one row per trade of either side with both sides' side, exit reason,
    quantity, prices and net P&L, and ``match`` (same side and exit reason, prices and quantity
    within the tolerances); the summary counts trades and mismatches and compares total P&L. A
    live position still open where the stored data end is counted apart (``open_at_data_end``):
    its label path is incomplete, so the backtest leaves the event out, as the labels do."""
    cols = ["side", "exit_reason", "qty", "entry_px", "exit_px", "net_pnl"]
    b = backtest[KEY + cols].assign(in_backtest=True)
    r = live[KEY + cols].assign(in_live=True)
    table = b.merge(r, on=KEY, how="outer", suffixes=("_backtest", "_live")).sort_values(KEY).reset_index(drop=True)
    both = table["in_backtest"].eq(True) & table["in_live"].eq(True)

    def close(col: str, rtol: float) -> pd.Series:
        return pd.Series(np.isclose(table[f"{col}_backtest"], table[f"{col}_live"], rtol=rtol, atol=0),
                         index=table.index)

    table["match"] = both & (table["side_backtest"] == table["side_live"]) & \
        (table["exit_reason_backtest"] == table["exit_reason_live"]) & close("qty", QTY_RTOL) & \
        close("entry_px", PRICE_RTOL) & close("exit_px", PRICE_RTOL)
    # a live position still open where the stored data end has no complete label path, so the
    # backtest (which trades labelled events) cannot have it: listed, not a difference
    open_at_end = table["in_live"].eq(True) & ~both & table["exit_reason_live"].isna()
    table["where"] = np.select([both, table["in_backtest"].eq(True), open_at_end],
                               ["both", "backtest only", "live only, open where the data end"], "live only")
    pnl_b, pnl_l = float(backtest["net_pnl"].sum()), float(live["net_pnl"].sum(skipna=True))
    qty_gap = (table["qty_backtest"] - table["qty_live"]).abs() / table["qty_backtest"].abs()
    summary = {"trades_backtest": len(backtest), "trades_live": len(live), "matched": int(table["match"].sum()),
               "mismatched": int((~table["match"] & ~open_at_end).sum()), "open_at_data_end": int(open_at_end.sum()),
               "net_pnl_backtest": pnl_b, "net_pnl_live": pnl_l,
               "max_qty_relative_gap": float(qty_gap[both].max()) if both.any() else 0.0,
               "pnl_within_1pct": bool(abs(pnl_b - pnl_l) <= PNL_RTOL * max(abs(pnl_b), 1e-9))}
    summary["passed"] = summary["mismatched"] == 0 and summary["pnl_within_1pct"] and len(backtest) > 0
    return table.drop(columns=["in_backtest", "in_live"]), summary


@dataclass
class ParityRun:
    backtest: BacktestRun
    live: pd.DataFrame
    table: pd.DataFrame
    summary: dict
    backtest_s: float
    replay_s: float
    replay_decisions: int


def backtest_and_replay(conn: duckdb.DuckDBPyConnection, model: ModelRecord,
                        days: list[tuple[str, str, str]]) -> ParityRun:
    """Backtest ``model`` on its own predictions of the decisions of ``days`` (``(date, from,
    to)``, consecutive dates, times of day) in one run, replay the same days one after the other
    into the same replay account (as a live loop running across midnight would), and compare."""
    first = pd.Timestamp(days[0][0]) + time_of_day(days[0][1])
    last = pd.Timestamp(days[-1][0]) + time_of_day(days[-1][2])
    began = time.perf_counter()
    backtest = backtest_model(conn, model, stress=False, source="model", start=days[0][0], end=days[-1][0],
                              between=(first, last))
    backtest_s = time.perf_counter() - began
    began = time.perf_counter()
    decisions = sum(replay(conn, model.model_id, day, start=start, end=end).report.get("decisions", 0)
                    for day, start, end in days)
    replay_s = time.perf_counter() - began
    live = live_trades(conn, BROKER, model.model_id, first, last)
    table, summary = compare(backtest.ledger, live)
    return ParityRun(backtest, live, table, summary, backtest_s, replay_s, decisions)
