"""The fill and cost model: market orders walk the visible book, pay the venue's taker fee, and
size beyond the 10 visible levels pays a penalty. The backtest engine, the paper broker and the
strategy's expected cost all price a fill with these functions, so the three agree by construction."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

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
def round_trip_prices(side: float, qty: float, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray,
                      ask_sz: np.ndarray, penalty: float) -> tuple[float, float]:
    """Entry and exit prices of ``qty`` opened in ``side`` and closed against the same book: the
    far side's walk in, the near side's walk out. ``qty`` 0 gives the touch prices."""
    q = qty if qty > 0 else 1e-300
    if side > 0:
        into, _ = walk_book(ask_px, ask_sz, q, penalty, 1.0)
        out, _ = walk_book(bid_px, bid_sz, q, penalty, -1.0)
    else:
        into, _ = walk_book(bid_px, bid_sz, q, penalty, -1.0)
        out, _ = walk_book(ask_px, ask_sz, q, penalty, 1.0)
    return into, out


@numba.njit(cache=True)
def round_trip_cost(side: float, qty: float, mid: float, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray,
                    ask_sz: np.ndarray, fee: float, penalty: float) -> float:
    """Expected cost of a round trip of ``qty`` as a return on the notional at ``mid``.

    .. math:: c = \\frac{s\\,(p_{in} - p_{out}) + f\\,(p_{in} + p_{out})}{m}

    with :math:`p_{in}, p_{out}` from :func:`round_trip_prices` (so :math:`c` holds the spread,
    i.e. the half-spread paid on each leg, and the book-walk impact of both legs at that size),
    :math:`f` the taker fee per fill and :math:`m` the mid. The exit is priced on the current
    book: the book at the exit is not known at the decision. NaN when the book cannot fill.
    """
    into, out = round_trip_prices(side, qty, bid_px, bid_sz, ask_px, ask_sz, penalty)
    return (side * (into - out) + fee * (into + out)) / mid
