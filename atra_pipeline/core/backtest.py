"""Event backtest of the meta-model on out-of-fold predictions, with costs from the L2 book.

Rules
-----
* **Entries**: an event whose out-of-fold probability exceeds ``threshold`` opens a position in
  the primary model's side. (CPCV predicts an event several times: the mean probability is used.)
* **Exits**: at the event's label end ``t1``: the first barrier (take-profit, stop-loss, or the
  vertical barrier) touched on the real snapshot path, as the labels step found it.
* **One position per symbol**: a signal on a symbol with an open position is skipped (counted),
  never stacked or reversed; the position is free again from its exit fill on.
* **Fills**: market orders filled on the first snapshot at or after the decision time plus the
  latency, walking the book's levels on the far side for the order size; size beyond the 10
  visible levels is charged at the last level's price worsened by ``beyond_book_penalty_bps``.
  Slippage is measured against the mid at the decision time (so it includes what the latency
  cost), fees are ``taker_fee_bps`` of each fill's notional, and funding (perpetuals, optional)
  is ``funding_bps_per_8h`` of the entry notional per 8 hours held, paid by longs and received
  by shorts.
* **Sizing**: :func:`atra_pipeline.core.sizing.notional_for` (what ``position_notional`` computes) on the
  equity realised so far.
* **Equity** moves when a position closes (realised P&L); the daily equity curve is the last
  realised equity of each UTC day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

from atra_pipeline.core.schema import N_LEVELS
from atra_pipeline.core.sizing import SizingSettings, kelly_fraction, notional_for

NS_PER_8H = 8 * 3600 * 10**9


# Base-tier fees in bps, (maker, taker), per exchange and market. The engine's orders are
# marketable (they walk the book), so they pay the taker rate; the maker rate is listed for
# comparison and for passive fills.
EXCHANGE_FEES_BPS = {
    "binance_usdm": (2.0, 4.0),   # USDT-M futures: the seed system's assumption
    "binance_spot": (10.0, 10.0),
    "bybit_linear": (2.0, 5.5),
    "okx_swap": (2.0, 5.0),
}


@dataclass(frozen=True)
class CostSettings:
    taker_fee_bps: float = EXCHANGE_FEES_BPS["binance_usdm"][1]
    """Fee per fill, bps of its notional; see EXCHANGE_FEES_BPS for other venues."""
    latency_ms: float = 250.0
    """Decision to order arrival: the fill uses the first snapshot at or after t + latency."""
    beyond_book_penalty_bps: float = 10.0
    """Extra price impact for size beyond the 10 visible levels, over the last visible level's price."""
    funding_bps_per_8h: float = 0.0
    """Perpetual funding rate per 8 hours (0: spot, or funding ignored)."""


@dataclass(frozen=True)
class BacktestSettings:
    threshold: float = 0.5
    initial_equity: float = 100_000.0
    pt_sl: tuple[float, float] = (1.0, 1.0)
    sizing: SizingSettings = field(default_factory=SizingSettings)
    costs: CostSettings = field(default_factory=CostSettings)


@numba.njit(cache=True)
def walk_book(px: np.ndarray, sz: np.ndarray, qty: float, penalty: float, sign: float) -> tuple[float, float]:
    """Volume-weighted fill price of ``qty`` against levels ``px``/``sz`` (best first; NaN levels
    skipped) and the quantity filled beyond the visible levels, charged at the last visible price
    times ``1 + sign * penalty`` (sign +1 buying up the asks, -1 selling down the bids)."""
    remaining = qty
    cost = 0.0
    last = np.nan
    for i in range(px.size):
        if np.isnan(px[i]) or np.isnan(sz[i]) or remaining <= 0:
            continue
        take = min(remaining, sz[i])
        cost += take * px[i]
        remaining -= take
        last = px[i]
    beyond = max(remaining, 0.0)
    if beyond > 0:
        cost += beyond * last * (1.0 + sign * penalty)
    return (cost / qty if qty > 0 else np.nan), beyond


@numba.njit(cache=True)
def _simulate(sym, entry_ns, exit_ns, exit_fill_ns, side, prob, target, entry_mid,
              entry_bid_px, entry_bid_sz, entry_ask_px, entry_ask_sz,
              exit_bid_px, exit_bid_sz, exit_ask_px, exit_ask_sz,
              n_symbols, equity0, pt, sl, kelly_mult, vol_target, max_risk, max_sym, max_gross,
              fee, penalty, funding_per_ns):
    n = sym.size
    taken = np.zeros(n, dtype=np.bool_)
    qty = np.zeros(n)
    entry_px = np.full(n, np.nan)
    exit_px = np.full(n, np.nan)
    fees = np.zeros(n)
    funding = np.zeros(n)
    beyond = np.zeros(n)
    equity_after = np.full(n, np.nan)
    open_idx = np.full(n_symbols, -1)
    notional_open = np.zeros(n_symbols)
    equity = equity0
    skipped = 0
    for i in range(n):
        # close every position whose exit fill comes before this decision, in exit order
        while True:
            first = -1
            for s in range(n_symbols):
                j = open_idx[s]
                if j >= 0 and exit_fill_ns[j] <= entry_ns[i] and (first < 0 or exit_fill_ns[j] < exit_fill_ns[first]):
                    first = j
            if first < 0:
                break
            equity += _close(first, side, qty, entry_px, exit_px, fees, beyond, funding, exit_bid_px, exit_bid_sz,
                             exit_ask_px, exit_ask_sz, entry_ns, exit_ns, fee, penalty, funding_per_ns)
            equity_after[first] = equity
            notional_open[sym[first]] = 0.0
            open_idx[sym[first]] = -1
        s = sym[i]
        if open_idx[s] >= 0:
            skipped += 1
            continue
        if np.isnan(entry_mid[i]):
            continue
        notional = notional_for(equity, prob[i], pt, sl, target[i], kelly_mult, vol_target, max_risk, max_sym,
                                max_gross, notional_open[s], notional_open.sum())
        if notional <= 0:
            continue
        q = notional / entry_mid[i]
        if side[i] > 0:
            px, bey = walk_book(entry_ask_px[i], entry_ask_sz[i], q, penalty, 1.0)
        else:
            px, bey = walk_book(entry_bid_px[i], entry_bid_sz[i], q, penalty, -1.0)
        if np.isnan(px):
            continue
        taken[i] = True
        qty[i] = q
        entry_px[i] = px
        beyond[i] = bey
        fees[i] = fee * q * px
        open_idx[s] = i
        notional_open[s] = notional
    for s in range(n_symbols):  # positions still open at the end close at their own exits
        j = open_idx[s]
        if j >= 0:
            equity += _close(j, side, qty, entry_px, exit_px, fees, beyond, funding, exit_bid_px, exit_bid_sz,
                             exit_ask_px, exit_ask_sz, entry_ns, exit_ns, fee, penalty, funding_per_ns)
            equity_after[j] = equity
    return taken, qty, entry_px, exit_px, fees, funding, beyond, equity_after, skipped


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


def _levels(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    return frame[[f"{prefix}_{i}" for i in range(N_LEVELS)]].to_numpy(dtype=float)


def run_backtest(candidates: pd.DataFrame, settings: BacktestSettings = BacktestSettings()) -> tuple[pd.DataFrame, dict]:
    """Simulate the rules above on ``candidates`` (one row per event above the threshold, in time
    order, from ``sql/backtest/candidates.sql``: ts, symbol, side, probability, t1, target,
    barrier, ret, entry_mid, exit_mid, entry_fill_ts, exit_fill_ts and the entry/exit books
    ``entry_bid_px_0..9`` ...). Returns the trade ledger (taken trades) and counts."""
    c = candidates.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    symbols = sorted(c["symbol"].unique())
    sym = c["symbol"].map({s: i for i, s in enumerate(symbols)}).to_numpy(dtype=np.int64)
    ns = lambda col: pd.DatetimeIndex(c[col]).as_unit("ns").asi8  # noqa: E731
    costs, sizing = settings.costs, settings.sizing
    out = _simulate(
        sym, ns("ts"), ns("t1"), ns("exit_fill_ts"), c["side"].to_numpy(float), c["probability"].to_numpy(float),
        c["target"].to_numpy(float), c["entry_mid"].to_numpy(float),
        _levels(c, "entry_bid_px"), _levels(c, "entry_bid_sz"), _levels(c, "entry_ask_px"), _levels(c, "entry_ask_sz"),
        _levels(c, "exit_bid_px"), _levels(c, "exit_bid_sz"), _levels(c, "exit_ask_px"), _levels(c, "exit_ask_sz"),
        len(symbols), settings.initial_equity, settings.pt_sl[0], settings.pt_sl[1], sizing.kelly_multiplier,
        sizing.vol_target, sizing.max_risk_per_trade, sizing.max_symbol_exposure, sizing.max_gross_exposure,
        costs.taker_fee_bps * 1e-4, costs.beyond_book_penalty_bps * 1e-4, costs.funding_bps_per_8h * 1e-4 / NS_PER_8H,
    )
    taken, qty, entry_px, exit_px, fees, funding, beyond, equity_after, skipped = out
    t = c.loc[taken, ["ts", "symbol", "side", "probability", "t1", "barrier", "ret", "target", "entry_fill_ts",
                      "exit_fill_ts", "entry_mid", "exit_mid"]].copy()
    t["qty"], t["entry_price"], t["exit_price"] = qty[taken], entry_px[taken], exit_px[taken]
    t["notional"] = t["qty"] * t["entry_price"]
    t["gross_pnl"] = t["side"] * (t["exit_mid"] - t["entry_mid"]) * t["qty"]
    t["slippage_cost"] = t["side"] * ((t["entry_price"] - t["entry_mid"]) + (t["exit_mid"] - t["exit_price"])) * t["qty"]
    t["fee_cost"], t["funding_cost"], t["beyond_book_qty"] = fees[taken], funding[taken], beyond[taken]
    t["net_pnl"] = t["gross_pnl"] - t["slippage_cost"] - t["fee_cost"] - t["funding_cost"]
    t["equity_after"] = equity_after[taken]
    t["kelly_fraction"] = kelly_fraction(t["probability"], settings.pt_sl[0] / settings.pt_sl[1], sizing.kelly_multiplier)
    t = t.sort_values("exit_fill_ts", kind="stable").reset_index(drop=True)
    report = {"candidates": len(c), "trades": int(taken.sum()), "skipped_position_open": int(skipped),
              "not_sized": int(len(c) - taken.sum() - skipped)}
    return t, report


def daily_equity(ledger: pd.DataFrame, initial_equity: float, start, end) -> pd.Series:
    """Realised equity at the end of each UTC day in ``[start, end]`` (days without exits carry on),
    after ``initial_equity`` at the end of the day before ``start`` (so one day gives one return)."""
    days = pd.date_range(pd.Timestamp(start).normalize() - pd.Timedelta(days=1), pd.Timestamp(end).normalize(), freq="D")
    pnl = ledger.groupby(pd.DatetimeIndex(ledger["exit_fill_ts"]).normalize())["net_pnl"].sum()
    return (initial_equity + pnl.reindex(days, fill_value=0.0).cumsum()).rename("equity")


def trade_returns(ledger: pd.DataFrame) -> pd.Series:
    """Each trade's net P&L as a return on the equity just before it closed:
    ``net_pnl / (equity_after - net_pnl)``."""
    return ledger["net_pnl"] / (ledger["equity_after"] - ledger["net_pnl"])
