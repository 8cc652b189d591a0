"""Position sizing: fractional Kelly on the net-of-cost pay-off, volatility targeting, a hard cap on
the equity at risk per trade, and gross-exposure caps.

Sizes are notionals in quote currency. A trade opened at notional :math:`N` either reaches its
take-profit and earns :math:`N\\,W` or its stop-loss and loses :math:`N\\,L`, with
:math:`W = pt\\,\\tau - c` and :math:`L = sl\\,\\tau + c` (barrier width :math:`\\tau`, round-trip
cost :math:`c`, all returns on the notional). Its *risk* is :math:`N\\,L`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba


@numba.vectorize(["float64(float64, float64, float64, float64)"], cache=True)
def kelly_fraction(p, win, loss, fraction):
    """Fractional Kelly notional as a share of equity: ``fraction x max(0, p / L - (1 - p) / W)``.

    A bet staking :math:`f` of equity as notional that returns :math:`+W` with probability
    :math:`p` and :math:`-L` otherwise grows log wealth by
    :math:`g(f) = p \\ln(1 + f W) + (1 - p) \\ln(1 - f L)`; :math:`g'(f) = 0` gives
    :math:`f^* = p / L - (1 - p) / W` (Kelly 1956; Thorp 2006, eq. 3.3 for the two-outcome bet).
    With no costs and :math:`W = pt\\,\\tau`, :math:`L = sl\\,\\tau` it is the textbook
    :math:`(p - (1 - p)/b) / (sl\\,\\tau)` with :math:`b = pt/sl`. A fraction of it (a quarter by
    default) trades some growth for a much smaller drawdown; no edge (or :math:`W \\le 0`) stakes
    nothing. A numpy ufunc: scalars and arrays, and callable from the compiled kernels.
    """
    if not (win > 0 and loss > 0):
        return 0.0
    return fraction * max(0.0, p / loss - (1.0 - p) / win)


@dataclass(frozen=True)
class SizingSettings:
    kelly_multiplier: float = 0.25
    """Fraction of the full Kelly stake."""
    vol_target: float = 0.02
    """Largest expected move of a position over its holding period, as a share of equity."""
    max_risk_per_trade: float = 0.02
    """Hard cap: equity lost at the stop-loss, costs included, as a share of equity (2%)."""
    max_symbol_exposure: float = 1.0
    """Gross notional per symbol, as a multiple of equity."""
    max_gross_exposure: float = 2.0
    """Gross notional over all symbols, as a multiple of equity."""


@numba.njit(cache=True)
def notional_for(equity: float, p: float, win: float, loss: float, target: float, kelly_multiplier: float,
                 vol_target: float, max_risk_per_trade: float, max_symbol_exposure: float,
                 max_gross_exposure: float, symbol_exposure: float, gross_exposure: float) -> float:
    """Notional for one entry: the smallest of the Kelly notional, the volatility target and the
    risk cap, clipped to the room left under the exposure caps.

    * Kelly: :func:`kelly_fraction` of :math:`(p, W, L)` times equity :math:`E`;
    * volatility target: :math:`\\text{vol\\_target}\\,E / \\tau` (``target`` = :math:`\\tau`);
    * risk cap: :math:`\\text{max\\_risk}\\,E / L`.

    Parameters
    ----------
    equity, p, win, loss, target
        :math:`E, p, W, L, \\tau` as above.
    kelly_multiplier, vol_target, max_risk_per_trade, max_symbol_exposure, max_gross_exposure
        The fields of :class:`SizingSettings`.
    symbol_exposure, gross_exposure
        The notionals already open in the symbol and in all symbols.

    Returns
    -------
    float
        The notional, 0 when nothing may be staked.
    """
    if equity <= 0 or target <= 0 or loss <= 0 or win <= 0:
        return 0.0
    kelly = kelly_fraction(p, win, loss, kelly_multiplier)
    room = min(max_symbol_exposure * equity - symbol_exposure, max_gross_exposure * equity - gross_exposure)
    return max(0.0, min(kelly * equity, vol_target * equity / target, max_risk_per_trade * equity / loss, room))
