"""The trading rules, defined once: the backtest engine (:mod:`atra_pipeline.core.backtest.engine`) and
the live executor (:mod:`atra_pipeline.core.execution.executor`) call these same functions.

Entry
    At a decision time that is an event of the filter the model was trained on (CUSUM on the mid
    path, :func:`atra_pipeline.core.labels.partition.event_filter`), in the primary model's side, when
    the expected net edge per unit of notional

    .. math:: e = p\\,(pt\\,\\tau - c) - (1 - p)\\,(sl\\,\\tau + c)

    exceeds ``min_edge_bps``; :math:`p` is the meta-model's probability that the side's trade
    ends in profit, :math:`\\tau` the barrier width, :math:`c` the expected round-trip cost at the
    intended size (:func:`atra_pipeline.core.strategy.fills.round_trip_cost`: fees, the spread and the
    book walk of both legs on the current book). With ``pt = sl`` the break-even probability is
    :math:`1/2 + c / (2\\,pt\\,\\tau)`.
Sizing
    :func:`atra_pipeline.core.strategy.sizing.notional_for` with :math:`W = pt\\,\\tau - c` and
    :math:`L = sl\\,\\tau + c`, on marked-to-market equity, then at most ``max_notional`` at the
    walked price. Size and cost depend on each other: the size is the largest the rule still
    justifies at its own expected cost, and the edge is judged at that cost.
Exits
    The first of the take-profit :math:`s \\ln(m_t / m_0) \\ge pt\\,\\tau`, the stop-loss
    :math:`s \\ln(m_t / m_0) \\le -sl\\,\\tau` on every snapshot mid :math:`m_t` after the
    decision (:math:`m_0` the mid at the decision), and the vertical barrier at decision +
    ``max_holding_s``: exactly the rule of :func:`atra_pipeline.core.labels.methods.triple_barrier_labels`.
One position per symbol
    A decision on a symbol whose position has not yet been closed by its exit fill is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from atra_pipeline.core.labels.methods import BARRIERS, touch
from atra_pipeline.core.strategy.fills import CostSettings, round_trip_cost, round_trip_prices
from atra_pipeline.core.strategy.sizing import SizingSettings, notional_for

# Why a decision did not trade; "" when it did. Shared by the backtest's and the live decision records.
REASONS = ("", "no_event", "no_side", "no_target", "no_book", "position_open", "edge_below_min", "not_sized",
           "kill_switch")
(TAKEN, NO_EVENT, NO_SIDE, NO_TARGET, NO_BOOK, POSITION_OPEN, EDGE_BELOW_MIN, NOT_SIZED,
 KILL_SWITCH) = range(len(REASONS))
EXIT_REASONS = (*BARRIERS, "kill")
VERTICAL_EXIT = EXIT_REASONS.index("vertical")
NO_EXIT = -1


@dataclass(frozen=True)
class StrategySettings:
    """The strategy's own settings; the barrier multipliers and holding period are the labels'."""

    min_edge_bps: float = 0.0
    """Enter only when the expected net edge exceeds this (bps of the notional)."""
    max_notional: float = 50_000.0
    """Largest position, quote currency, at the walked entry price (the execution rails' order cap)."""
    costs: CostSettings = field(default_factory=CostSettings)
    sizing: SizingSettings = field(default_factory=SizingSettings)

    def kernel_args(self) -> tuple[float, ...]:
        """The scalars :func:`entry_decision` takes after the exposures, in its order."""
        s, c = self.sizing, self.costs
        return (c.taker_fee_bps * 1e-4, c.beyond_book_penalty_bps * 1e-4, float(self.min_edge_bps),
                s.kelly_multiplier, s.vol_target, s.max_risk_per_trade, s.max_symbol_exposure, s.max_gross_exposure,
                float(self.max_notional))


@numba.njit(cache=True)
def expected_edge(p, tau, pt, sl, cost):
    """:math:`p\\,(pt\\,\\tau - c) - (1 - p)\\,(sl\\,\\tau + c)`, a return on the notional."""
    return p * (pt * tau - cost) - (1.0 - p) * (sl * tau + cost)


@numba.njit(cache=True)
def _sized_qty(qty, p, side, tau, pt, sl, mid, bid_px, bid_sz, ask_px, ask_sz, equity, symbol_exposure,
               gross_exposure, fee, penalty, kelly_multiplier, vol_target, max_risk, max_symbol_exposure,
               max_gross_exposure, max_notional):
    """The quantity the sizing rule justifies when the round trip costs what ``qty`` costs."""
    cost = round_trip_cost(side, qty, mid, bid_px, bid_sz, ask_px, ask_sz, fee, penalty)
    notional = notional_for(equity, p, pt * tau - cost, sl * tau + cost, tau, kelly_multiplier, vol_target,
                            max_risk, max_symbol_exposure, max_gross_exposure, symbol_exposure, gross_exposure)
    return min(notional, max_notional) / mid


@numba.njit(cache=True)
def entry_decision(p, side, tau, pt, sl, mid, bid_px, bid_sz, ask_px, ask_sz, equity, symbol_exposure,
                   gross_exposure, fee, penalty, min_edge_bps, kelly_multiplier, vol_target, max_risk,
                   max_symbol_exposure, max_gross_exposure, max_notional):
    """The entry rule for one decision with an event and a side: ``(qty, cost, edge, reason)``,
    ``cost`` and ``edge`` as returns on the notional at the intended size, ``reason`` an index of
    :data:`REASONS` (``TAKEN`` with ``qty > 0``).

    The size :math:`q` is the largest the sizing rule still justifies at its own expected cost:
    :math:`g(q)` = the size at the cost of :math:`q` falls as :math:`q` grows (a bigger order
    walks further), so :math:`q = g(q)` has one solution in :math:`[0, g(0)]`, found by bisection
    (kept on the side where :math:`g(q) \\ge q`)."""
    if not tau > 0:
        return 0.0, np.nan, np.nan, NO_TARGET
    if not mid > 0 or np.isnan(bid_px[0]) or np.isnan(ask_px[0]):
        return 0.0, np.nan, np.nan, NO_BOOK
    args = (p, side, tau, pt, sl, mid, bid_px, bid_sz, ask_px, ask_sz, equity, symbol_exposure, gross_exposure, fee,
            penalty, kelly_multiplier, vol_target, max_risk, max_symbol_exposure, max_gross_exposure, max_notional)
    qty = _sized_qty(0.0, *args)
    if qty > 0 and _sized_qty(qty, *args) < qty:
        lo, hi = 0.0, qty
        for _ in range(60):
            half = 0.5 * (lo + hi)
            if _sized_qty(half, *args) >= half:
                lo = half
            else:
                hi = half
        qty = lo
    cost = round_trip_cost(side, qty, mid, bid_px, bid_sz, ask_px, ask_sz, fee, penalty)
    edge = expected_edge(p, tau, pt, sl, cost)
    if not edge * 1e4 > min_edge_bps:
        return 0.0, cost, edge, EDGE_BELOW_MIN
    if not qty > 0:
        return 0.0, cost, edge, NOT_SIZED
    into, _ = round_trip_prices(side, qty, bid_px, bid_sz, ask_px, ask_sz, penalty)
    if qty * into > max_notional:  # a smaller order walks to no worse a price: still within the cap
        qty = max_notional / into
    return qty, cost, edge, TAKEN


@numba.njit(cache=True)
def first_exit(times, logp, entry_ns, logp0, side, up, down, vertical_ns, now_ns):
    """The exit of a position opened at ``entry_ns`` seen on the snapshots ``times`` / ``logp``
    (log mids, sorted; those at or before ``entry_ns`` are ignored) up to ``now_ns``:
    ``(code, at_ns)`` with ``code`` an index of :data:`EXIT_REASONS`, or ``(NO_EXIT, now_ns)``.
    ``logp0`` is the log mid at the decision, ``up`` / ``down`` the barriers as signed log
    returns (:func:`barriers`)."""
    for j in range(times.size):
        t = times[j]
        if t <= entry_ns:
            continue
        if t > vertical_ns or t > now_ns:
            break
        code = touch(logp[j] - logp0, side, up, down)
        if code >= 0:
            return code, t
    if now_ns >= vertical_ns:
        return VERTICAL_EXIT, vertical_ns
    return NO_EXIT, now_ns


def barriers(tau: float, pt: float, sl: float) -> tuple[float, float]:
    """The take-profit and stop-loss as signed log returns for :func:`first_exit` (0 disables one)."""
    return (pt * tau if pt > 0 else np.inf), (-sl * tau if sl > 0 else -np.inf)
