"""Position sizing: fractional Kelly from the meta-model's probability, volatility targeting, a
hard cap on the equity at risk per trade, and gross-exposure caps.

Sizes are notionals in quote currency. A trade's *risk* is what it loses at its stop-loss:
``notional x stop distance`` (the stop-loss barrier's distance from the entry, as a return).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


def kelly_fraction(p, win_loss_ratio, fraction: float = 0.25):
    """Fractional Kelly stake: ``fraction x max(0, p - (1 - p) / b)``.

    For a bet won with probability ``p`` paying ``b`` times what it risks (here the take-profit
    over the stop-loss distance, ``pt / sl``), :math:`f^* = p - (1-p)/b` of equity is the stake
    that maximises expected log wealth (Kelly 1956); a fraction of it (a quarter by default)
    trades some growth for a much smaller drawdown, and a negative edge stakes nothing.
    Works on scalars and arrays.
    """
    p = np.asarray(p, dtype=float)
    b = np.asarray(win_loss_ratio, dtype=float)
    return fraction * np.maximum(0.0, p - (1.0 - p) / b)


@dataclass(frozen=True)
class SizingSettings:
    kelly_multiplier: float = 0.25
    """Fraction of the full Kelly stake."""
    vol_target: float = 0.02
    """Largest expected move of a position over its holding period, as a share of equity."""
    max_risk_per_trade: float = 0.02
    """Hard cap: equity lost at the stop-loss, as a share of equity (2%)."""
    max_symbol_exposure: float = 1.0
    """Gross notional per symbol, as a multiple of equity."""
    max_gross_exposure: float = 2.0
    """Gross notional over all symbols, as a multiple of equity."""


def position_notional(equity: float, p: float, pt: float, sl: float, target: float,
                      settings: SizingSettings, symbol_exposure: float = 0.0, gross_exposure: float = 0.0) -> float:
    """Notional for one entry: the smallest of the Kelly stake, the volatility target and the risk
    cap, then clipped to the room left under the exposure caps.

    With stop distance :math:`d = sl\\,\\tau` and take-profit :math:`pt\\,\\tau` (``target`` =
    :math:`\\tau`, a return over the holding period):

    * Kelly: stake (the amount at risk) :math:`k E` with :math:`k` = :func:`kelly_fraction` of
      ``p`` at :math:`b = pt/sl`, so notional :math:`k E / d`;
    * volatility target: notional :math:`\\text{vol\\_target}\\,E / \\tau`;
    * risk cap: notional :math:`\\text{max\\_risk}\\,E / d`.

    ``symbol_exposure`` and ``gross_exposure`` are the notionals already open.
    """
    if sl <= 0 or target <= 0:  # both negative would multiply into a positive stop distance
        return 0.0
    s = settings
    return notional_for(float(equity), float(p), float(pt), float(sl), float(target), float(s.kelly_multiplier),
                        float(s.vol_target), float(s.max_risk_per_trade), float(s.max_symbol_exposure),
                        float(s.max_gross_exposure), float(symbol_exposure), float(gross_exposure))


@numba.njit(cache=True)
def notional_for(equity: float, p: float, pt: float, sl: float, target: float, kelly_multiplier: float,
                 vol_target: float, max_risk_per_trade: float, max_symbol_exposure: float,
                 max_gross_exposure: float, symbol_exposure: float, gross_exposure: float) -> float:
    """:func:`position_notional` on scalars, for the backtest's compiled loop and the live path alike.

    Parameters
    ----------
    equity, p, pt, sl, target, symbol_exposure, gross_exposure
        As in :func:`position_notional`.
    kelly_multiplier, vol_target, max_risk_per_trade, max_symbol_exposure, max_gross_exposure
        The fields of :class:`SizingSettings`.

    Returns
    -------
    float
        The notional, 0 when nothing may be staked.
    """
    stop = sl * target
    if stop <= 0 or equity <= 0:
        return 0.0
    b = pt / sl if pt > 0 else 1.0
    kelly = kelly_multiplier * max(0.0, p - (1.0 - p) / b)
    room = min(max_symbol_exposure * equity - symbol_exposure, max_gross_exposure * equity - gross_exposure)
    return max(0.0, min(kelly * equity / stop, vol_target * equity / target, max_risk_per_trade * equity / stop, room))
