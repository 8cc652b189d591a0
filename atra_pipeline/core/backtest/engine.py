"""Event backtest of a model's predictions, with costs from the L2 book, by the strategy's rules.

The rules are :mod:`atra_pipeline.core.strategy.rules`'s, the ones the live executor runs:

* **Decisions**: every event of the model's labels (CUSUM event with a primary side), in time
  order, with the model's probability (out-of-fold, or the registered model's own on days it did
  not train on). :func:`~atra_pipeline.core.strategy.rules.entry_decision` takes or skips each and
  records the expected cost, edge and reason, on marked-to-market equity: realised equity plus
  each open position's P&L at the symbol's mid at the decision (its entry fee paid).
* **Exits**: the label's end ``t1``, the first barrier (take-profit, stop-loss, vertical) touched
  on the snapshot path: the same rule as :func:`~atra_pipeline.core.strategy.rules.first_exit`.
* **One position per symbol**: a decision on a symbol whose position has not been closed by its
  exit fill is skipped (``position_open``).
* **Fills**: market orders on the first snapshot at or after the order time (decision, or exit
  event) plus the latency, walking the book (:func:`~atra_pipeline.core.strategy.fills.walk_book`).
  Slippage is measured against the decision-time mid, fees are ``taker_fee_bps`` of each fill's
  notional, funding (perpetuals, optional) ``funding_bps_per_8h`` of the entry notional per 8
  hours held, paid by longs and received by shorts.
* **Equity** for the daily curve moves when a position closes (realised P&L).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from atra_pipeline.core.raw.schema import N_LEVELS
from atra_pipeline.core.strategy.fills import walk_book
from atra_pipeline.core.strategy.rules import POSITION_OPEN, REASONS, TAKEN, StrategySettings, entry_decision
from atra_pipeline.core.strategy.sizing import kelly_fraction

NS_PER_8H = 8 * 3600 * 10**9
# The decision record, shared with the live tables (live_decisions).
DECISION_COLUMNS = ["decision_ts", "symbol", "probability", "side", "barrier_width", "expected_cost_bps",
                    "expected_edge_bps", "taken", "reason_not_taken", "size_notional", "equity"]
# A trade: the decision's columns, its exit and its costs (live_positions holds the same trade
# facts under these names where it has them).
TRADE_COLUMNS = ["decision_ts", "symbol", "side", "probability", "barrier_width", "expected_cost_bps",
                 "expected_edge_bps", "t1", "exit_reason", "ret", "entry_ts", "exit_ts", "entry_mid", "exit_mid", "qty",
                 "entry_px", "exit_px", "notional", "gross_pnl", "slippage_cost", "fee_cost", "funding_cost",
                 "beyond_book_qty", "net_pnl", "equity_after", "kelly_fraction"]


@dataclass(frozen=True)
class BacktestSettings:
    initial_equity: float = 100_000.0
    """The account's equity at the start, quote currency (sizes the trades; the returns are on it)."""
    pt_sl: tuple[float, float] = (1.0, 1.0)
    """The labels' barrier multipliers."""
    strategy: StrategySettings = field(default_factory=StrategySettings)
    """What to trade and at what cost."""


@numba.njit(cache=True)
def _close(j, side, qty, entry_px, exit_px, fees, beyond, funding, exit_bid_px, exit_bid_sz, exit_ask_px,
           exit_ask_sz, entry_ns, exit_ns, fee, penalty, funding_per_ns) -> float:
    """Fill the exit of trade ``j`` and return its net P&L."""
    if side[j] > 0:
        px, bey = walk_book(exit_bid_px[j], exit_bid_sz[j], qty[j], penalty, -1.0)
    else:
        px, bey = walk_book(exit_ask_px[j], exit_ask_sz[j], qty[j], penalty, 1.0)
    exit_px[j] = px
    beyond[j] += bey
    fees[j] += fee * qty[j] * px
    funding[j] = side[j] * funding_per_ns * (exit_ns[j] - entry_ns[j]) * qty[j] * entry_px[j]
    return side[j] * (px - entry_px[j]) * qty[j] - fees[j] - funding[j]


@numba.njit(cache=True)
def _simulate(sym, ts_ns, exit_ns, entry_fill_ns, exit_fill_ns, side, prob, target, mid, marks,
              dec_bid_px, dec_bid_sz, dec_ask_px, dec_ask_sz, entry_bid_px, entry_bid_sz, entry_ask_px, entry_ask_sz,
              exit_bid_px, exit_bid_sz, exit_ask_px, exit_ask_sz, n_symbols, equity0, pt, sl, funding_per_ns,
              fee, penalty, min_edge_bps, kelly_multiplier, vol_target, max_risk, max_sym, max_gross, max_notional):
    n = sym.size
    reason = np.full(n, -1, dtype=np.int64)
    qty = np.zeros(n)
    cost = np.full(n, np.nan)
    edge = np.full(n, np.nan)
    equity_at = np.full(n, np.nan)
    entry_px = np.full(n, np.nan)
    exit_px = np.full(n, np.nan)
    fees = np.zeros(n)
    funding = np.zeros(n)
    beyond = np.zeros(n)
    equity_after = np.full(n, np.nan)
    open_idx = np.full(n_symbols, -1)
    notional_open = np.zeros(n_symbols)
    realised = equity0
    for i in range(n + 1):
        # close every position whose exit fill comes at or before this decision (after the last
        # decision: every position still open), in exit order
        limit = ts_ns[i] if i < n else np.iinfo(np.int64).max
        while True:
            first = -1
            for s in range(n_symbols):
                j = open_idx[s]
                if j >= 0 and exit_fill_ns[j] <= limit and (first < 0 or exit_fill_ns[j] < exit_fill_ns[first]):
                    first = j
            if first < 0:
                break
            realised += _close(first, side, qty, entry_px, exit_px, fees, beyond, funding, exit_bid_px, exit_bid_sz,
                               exit_ask_px, exit_ask_sz, entry_fill_ns, exit_fill_ns, fee, penalty, funding_per_ns)
            equity_after[first] = realised
            notional_open[sym[first]] = 0.0
            open_idx[sym[first]] = -1
        if i == n:
            break
        equity = realised  # marked to market: open positions filled by now, at each symbol's mid
        for s in range(n_symbols):
            j = open_idx[s]
            if j >= 0 and entry_fill_ns[j] <= ts_ns[i]:
                mark = marks[i, s] if not np.isnan(marks[i, s]) else entry_px[j]
                equity += side[j] * qty[j] * (mark - entry_px[j]) - fees[j]
        equity_at[i] = equity
        s = sym[i]
        if open_idx[s] >= 0:
            reason[i] = POSITION_OPEN
            continue
        q, c, e, r = entry_decision(prob[i], side[i], target[i], pt, sl, mid[i], dec_bid_px[i], dec_bid_sz[i],
                                    dec_ask_px[i], dec_ask_sz[i], equity, notional_open[s], notional_open.sum(),
                                    fee, penalty, min_edge_bps, kelly_multiplier, vol_target, max_risk, max_sym,
                                    max_gross, max_notional)
        cost[i], edge[i], reason[i] = c, e, r
        if r != TAKEN:
            continue
        if side[i] > 0:
            px, bey = walk_book(entry_ask_px[i], entry_ask_sz[i], q, penalty, 1.0)
        else:
            px, bey = walk_book(entry_bid_px[i], entry_bid_sz[i], q, penalty, -1.0)
        qty[i] = q
        entry_px[i] = px
        beyond[i] = bey
        fees[i] = fee * q * px
        open_idx[s] = i
        notional_open[s] = q * mid[i]
    return reason, qty, cost, edge, equity_at, entry_px, exit_px, fees, funding, beyond, equity_after


def _levels(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    return np.ascontiguousarray(frame[[f"{prefix}_{i}" for i in range(N_LEVELS)]].to_numpy(dtype=float))


def _books(frame: pd.DataFrame, leg: str) -> list[np.ndarray]:
    return [_levels(frame, f"{leg}_{side}_{kind}") for side in ("bid", "ask") for kind in ("px", "sz")]


def run_backtest(candidates: pd.DataFrame, settings: BacktestSettings = BacktestSettings(),
                 marks: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Simulate the rules above (positions due at the same time close in symbol order) on
    ``candidates`` (one row per event, from ``sql/backtest/candidates.sql``: ts, symbol, side,
    probability, t1, target, barrier, ret, entry_mid (the mid at the decision), exit_mid,
    entry_fill_ts, exit_fill_ts and the books ``dec_*`` at the decision, ``entry_*`` and
    ``exit_*`` at the fills). ``marks``: each symbol's mid at each decision time (index ts, one
    column per symbol), for the marked-to-market equity; without it open positions are marked at
    their entry price.

    Returns the decision records (columns :data:`DECISION_COLUMNS`), the trade ledger (taken
    decisions, :data:`TRADE_COLUMNS`, in exit order) and counts per reason."""
    c = candidates.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    symbols = sorted(c["symbol"].unique())
    sym = c["symbol"].map({s: i for i, s in enumerate(symbols)}).to_numpy(dtype=np.int64)
    ns = lambda col: pd.DatetimeIndex(c[col]).as_unit("ns").asi8  # noqa: E731
    if marks is None:
        mark_matrix = np.full((len(c), len(symbols)), np.nan)
    else:
        mark_matrix = marks.reindex(index=pd.DatetimeIndex(c["ts"]), columns=symbols).to_numpy(dtype=float)
    strategy = settings.strategy
    pt, sl = (float(x) for x in settings.pt_sl)
    mid = c["entry_mid"].to_numpy(float).copy()
    # no book to fill on (the data end before the order would arrive or the exit fill): the
    # decision cannot trade, as live could not (reason no_book)
    mid[c["entry_fill_ts"].isna().to_numpy() | c["exit_fill_ts"].isna().to_numpy()] = np.nan
    out = _simulate(
        sym, ns("ts"), ns("t1"), ns("entry_fill_ts"), ns("exit_fill_ts"), c["side"].to_numpy(float),
        c["probability"].to_numpy(float), c["target"].to_numpy(float), mid,
        np.ascontiguousarray(mark_matrix), *_books(c, "dec"), *_books(c, "entry"), *_books(c, "exit"), len(symbols),
        float(settings.initial_equity), pt, sl, strategy.costs.funding_bps_per_8h * 1e-4 / NS_PER_8H,
        *strategy.kernel_args(),
    )
    reason, qty, cost, edge, equity_at, entry_px, exit_px, fees, funding, beyond, equity_after = out
    taken = reason == TAKEN
    decisions = pd.DataFrame({
        "decision_ts": c["ts"], "symbol": c["symbol"], "probability": c["probability"], "side": c["side"],
        "barrier_width": c["target"], "expected_cost_bps": cost * 1e4, "expected_edge_bps": edge * 1e4,
        "taken": taken, "reason_not_taken": np.asarray(REASONS, dtype=object)[reason],
        "size_notional": qty * c["entry_mid"].to_numpy(float), "equity": equity_at})
    t = c.loc[taken, ["ts", "symbol", "side", "probability", "target", "t1", "barrier", "ret", "entry_fill_ts",
                      "exit_fill_ts", "entry_mid", "exit_mid"]].rename(columns={
        "ts": "decision_ts", "target": "barrier_width", "barrier": "exit_reason", "entry_fill_ts": "entry_ts",
        "exit_fill_ts": "exit_ts"})
    t["expected_cost_bps"], t["expected_edge_bps"] = cost[taken] * 1e4, edge[taken] * 1e4
    t["qty"], t["entry_px"], t["exit_px"] = qty[taken], entry_px[taken], exit_px[taken]
    t["notional"] = t["qty"] * t["entry_px"]
    t["gross_pnl"] = t["side"] * (t["exit_mid"] - t["entry_mid"]) * t["qty"]
    t["slippage_cost"] = t["side"] * ((t["entry_px"] - t["entry_mid"]) + (t["exit_mid"] - t["exit_px"])) * t["qty"]
    t["fee_cost"], t["funding_cost"], t["beyond_book_qty"] = fees[taken], funding[taken], beyond[taken]
    t["net_pnl"] = t["gross_pnl"] - t["slippage_cost"] - t["fee_cost"] - t["funding_cost"]
    t["equity_after"] = equity_after[taken]
    cost_frac = t["expected_cost_bps"] * 1e-4
    t["kelly_fraction"] = kelly_fraction(t["probability"], pt * t["barrier_width"] - cost_frac,
                                         sl * t["barrier_width"] + cost_frac, strategy.sizing.kelly_multiplier)
    t = t[TRADE_COLUMNS].sort_values("exit_ts", kind="stable").reset_index(drop=True)
    counts = pd.Series(REASONS, dtype=object)[reason].value_counts()
    report = {"decisions": len(c), "trades": int(taken.sum()),
              **{f"skipped_{r}": int(counts.get(r, 0)) for r in REASONS[1:] if counts.get(r, 0)}}
    return decisions, t, report


def equity_curve(ledger: pd.DataFrame, initial_equity: float, start, end, freq: str = "D") -> pd.Series:
    """Realised equity at the end of each UTC period (``freq``: ``"D"`` days, ``"h"`` hours, any
    fixed pandas frequency such as ``"5min"``) from
    the period of ``start`` to that of ``end`` (periods without exits carry on), after
    ``initial_equity`` at the end of the period before ``start`` (so one period gives one return)."""
    step = pd.Timedelta(to_offset(freq))
    first, last = pd.Timestamp(start).floor(freq), pd.Timestamp(end).floor(freq)
    periods = pd.date_range(first - step, last, freq=step)
    pnl = ledger.groupby(pd.DatetimeIndex(ledger["exit_ts"]).floor(freq))["net_pnl"].sum()
    return (initial_equity + pnl.reindex(periods, fill_value=0.0).cumsum()).rename("equity")


def trade_returns(ledger: pd.DataFrame) -> pd.Series:
    """Each trade's net P&L as a return on the equity just before it closed:
    ``net_pnl / (equity_after - net_pnl)``."""
    return ledger["net_pnl"] / (ledger["equity_after"] - ledger["net_pnl"])
