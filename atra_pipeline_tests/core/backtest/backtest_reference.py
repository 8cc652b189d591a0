"""A pure-Python reference of the backtest engine (``core/backtest/engine.py``'s numba kernel), written the
usual way: iterate the decisions, keep a dict of open positions, close the due ones, mark the
open ones, walk the books level by level with row lookups. The entry rule is the strategy's
(tested on its own in ``test_strategy.py``); everything around it is written again here. The
tests compare the engine with it; ``benchmarks/backtest.py`` times it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atra_pipeline.core.backtest.engine import BacktestSettings
from atra_pipeline.core.strategy.rules import REASONS, TAKEN, entry_decision

LEVELS = 10


def walk(row, leg: str, side: str, qty: float, penalty: float, sign: float) -> float:
    remaining, cost, last = qty, 0.0, np.nan
    for i in range(LEVELS):
        px, sz = row[f"{leg}_{side}_px_{i}"], row[f"{leg}_{side}_sz_{i}"]
        if np.isnan(px) or np.isnan(sz):
            continue
        take = min(remaining, sz)
        cost += take * px
        remaining -= take
        last = px
        if remaining <= 0:
            break
    if remaining > 0:
        cost += remaining * last * (1 + sign * penalty)
    return cost / qty


def levels(row, leg: str, side: str, kind: str) -> np.ndarray:
    return np.array([row[f"{leg}_{side}_{kind}_{i}"] for i in range(LEVELS)], dtype=float)


def reference_backtest(c: pd.DataFrame, settings: BacktestSettings, marks: pd.DataFrame | None = None) -> tuple[
        pd.DataFrame, pd.DataFrame]:
    """``(decisions, trades)``: per decision its reason, quantity and equity; per trade its net P&L."""
    strategy = settings.strategy
    fee, penalty = strategy.costs.taker_fee_bps * 1e-4, strategy.costs.beyond_book_penalty_bps * 1e-4
    pt, sl = settings.pt_sl
    realised, open_pos, decisions, trades = settings.initial_equity, {}, [], []

    def close(symbol: str) -> None:
        nonlocal realised
        pos = open_pos.pop(symbol)
        r = pos["row"]
        exit_px = walk(r, "exit", "bid" if r["side"] > 0 else "ask", pos["qty"], penalty, -r["side"])
        pnl = r["side"] * (exit_px - pos["entry_px"]) * pos["qty"] - pos["fee"] - fee * pos["qty"] * exit_px
        realised += pnl
        trades.append({"decision_ts": r["ts"], "symbol": symbol, "qty": pos["qty"], "exit_px": exit_px, "net_pnl": pnl,
                       "equity_after": realised})

    for _, row in c.sort_values(["ts", "symbol"], kind="stable").iterrows():
        for symbol, pos in sorted(open_pos.items(), key=lambda kv: (kv[1]["row"]["exit_fill_ts"], kv[0])):
            if pos["row"]["exit_fill_ts"] <= row["ts"]:
                close(symbol)
        equity = realised
        for symbol, pos in open_pos.items():
            if pos["row"]["entry_fill_ts"] <= row["ts"]:
                mark = marks.loc[row["ts"], symbol] if marks is not None else np.nan
                mark = pos["entry_px"] if np.isnan(mark) else mark
                equity += pos["row"]["side"] * pos["qty"] * (mark - pos["entry_px"]) - pos["fee"]
        record = {"decision_ts": row["ts"], "symbol": row["symbol"], "equity": equity, "qty": 0.0}
        decisions.append(record)
        if row["symbol"] in open_pos:
            record["reason"] = "position_open"
            continue
        gross = sum(p["qty"] * p["row"]["entry_mid"] for p in open_pos.values())
        qty, _, _, reason = entry_decision(
            row["probability"], float(row["side"]), row["target"], pt, sl, row["entry_mid"],
            levels(row, "dec", "bid", "px"), levels(row, "dec", "bid", "sz"), levels(row, "dec", "ask", "px"),
            levels(row, "dec", "ask", "sz"), equity, 0.0, gross, *strategy.kernel_args())
        record["reason"] = REASONS[reason]
        if reason != TAKEN:
            continue
        record["qty"] = qty
        entry_px = walk(row, "entry", "ask" if row["side"] > 0 else "bid", qty, penalty, row["side"])
        open_pos[row["symbol"]] = {"row": row, "qty": qty, "entry_px": entry_px, "fee": fee * qty * entry_px}
    for symbol in sorted(open_pos, key=lambda s: (open_pos[s]["row"]["exit_fill_ts"], s)):  # open at the end
        close(symbol)
    return pd.DataFrame(decisions), pd.DataFrame(trades)
