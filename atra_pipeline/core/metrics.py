"""Performance and risk metrics of a return series, and the overfitting-aware Sharpe statistics.

Every function takes a pandas Series of simple per-period returns (daily for a crypto book that
trades every day: ``periods_per_year=365``). Conventions are empyrical's (and quantstats'): sample
standard deviation (ddof=1), risk-free rate 0 by default and given per period, drawdowns on the
compounded wealth path starting from 1 before the first period, historical VaR as a percentile
with linear interpolation. The Probabilistic and Deflated Sharpe Ratios use the per-period (not
annualised) Sharpe ratio and the sample skewness and Pearson kurtosis without bias correction,
as in Bailey & Lopez de Prado (2012, 2014).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import kurtosis, norm, skew

EULER_GAMMA = 0.5772156649015329
METRIC_NAMES = (
    "total_return", "annualized_return", "annualized_volatility", "sharpe_ratio", "sortino_ratio", "calmar_ratio",
    "omega_ratio", "max_drawdown", "max_drawdown_duration", "var_95", "cvar_95", "var_99", "cvar_99",
    "probabilistic_sharpe_ratio",
)


def _clean(returns: pd.Series) -> np.ndarray:
    return pd.Series(returns, dtype=float).dropna().to_numpy()


def total_return(returns: pd.Series) -> float:
    """:math:`\\prod_t (1 + r_t) - 1`."""
    return float(np.prod(1 + _clean(returns)) - 1)


def annualized_return(returns: pd.Series, periods_per_year: int = 365) -> float:
    """Compound annual growth: :math:`(1 + R)^{P/n} - 1` for total return R over n periods."""
    r = _clean(returns)
    return float((1 + total_return(r)) ** (periods_per_year / len(r)) - 1) if len(r) else float("nan")


def annualized_volatility(returns: pd.Series, periods_per_year: int = 365) -> float:
    """:math:`\\mathrm{std}(r; \\mathrm{ddof}=1) \\sqrt{P}`."""
    return float(np.std(_clean(returns), ddof=1) * math.sqrt(periods_per_year))


def sharpe_ratio(returns: pd.Series, periods_per_year: int = 365, risk_free: float = 0.0) -> float:
    """Annualised Sharpe ratio :math:`\\sqrt{P}\\,\\overline{r - r_f} / \\mathrm{std}(r - r_f)` (ddof=1),
    ``risk_free`` per period. NaN for fewer than 2 periods or no variation."""
    r = _clean(returns) - risk_free
    sd = np.std(r, ddof=1) if len(r) > 1 else float("nan")
    return float(np.mean(r) / sd * math.sqrt(periods_per_year)) if sd and sd > 0 else float("nan")


def sortino_ratio(returns: pd.Series, periods_per_year: int = 365, required_return: float = 0.0) -> float:
    """Annualised Sortino ratio: :math:`P\\,\\overline{r - m} / (\\sqrt{P}\\,DD)` with downside
    deviation :math:`DD = \\sqrt{\\tfrac1n \\sum_t \\min(r_t - m, 0)^2}` over all periods
    (+inf for a positive mean without any period below ``required_return``, as empyrical)."""
    r = _clean(returns) - required_return
    if not len(r):
        return float("nan")
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    if downside == 0:
        return float("inf") if np.mean(r) > 0 else float("nan")
    return float(np.mean(r) * periods_per_year / (downside * math.sqrt(periods_per_year)))


def _wealth(returns) -> np.ndarray:
    """Compounded wealth from 1 before the first period (so a first-period loss is a drawdown)."""
    return np.concatenate([[1.0], np.cumprod(1 + _clean(returns))])


def max_drawdown(returns: pd.Series) -> float:
    """Largest fall of compounded wealth from a running peak, :math:`\\min_t (W_t / \\max_{s\\le t} W_s - 1)`
    (a negative number, 0 without a fall); wealth starts at 1 before the first period."""
    w = _wealth(returns)
    return float(np.min(w / np.maximum.accumulate(w) - 1)) if len(w) else float("nan")


def max_drawdown_duration(returns: pd.Series) -> int:
    """Longest number of periods spent below a previous wealth peak (to recovery, or to the end)."""
    w = _wealth(returns)
    under = w < np.maximum.accumulate(w)
    longest = run = 0
    for flag in under:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return int(longest)


def calmar_ratio(returns: pd.Series, periods_per_year: int = 365) -> float:
    """Annualised return over the absolute max drawdown (NaN without a drawdown)."""
    mdd = max_drawdown(returns)
    return float(annualized_return(returns, periods_per_year) / abs(mdd)) if mdd < 0 else float("nan")


def omega_ratio(returns: pd.Series, threshold: float = 0.0) -> float:
    """Omega ratio at a per-period ``threshold``: :math:`\\sum (r - \\theta)^+ / \\sum (\\theta - r)^+`."""
    r = _clean(returns) - threshold
    losses = -r[r < 0].sum()
    return float(r[r > 0].sum() / losses) if losses > 0 else float("nan")


def value_at_risk(returns: pd.Series, level: float = 0.95) -> float:
    """Historical VaR: the ``1 - level`` percentile of the returns (linear interpolation), a
    negative return for a loss."""
    return float(np.percentile(_clean(returns), 100 * (1 - level)))


def conditional_value_at_risk(returns: pd.Series, level: float = 0.95) -> float:
    """Historical CVaR (expected shortfall): the mean of the sorted returns up to and including
    position :math:`\\lfloor (n-1)(1 - level) \\rfloor`, as empyrical computes it."""
    r = np.sort(_clean(returns))
    return float(np.mean(r[: int((len(r) - 1) * (1 - level)) + 1]))


def _sr_moments(returns) -> tuple[float, float, float, int]:
    r = _clean(returns)
    sd = np.std(r, ddof=1)
    return float(np.mean(r) / sd), float(skew(r, bias=True)), float(kurtosis(r, fisher=False, bias=True)), len(r)


def probabilistic_sharpe_ratio(returns: pd.Series, benchmark_sharpe: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``benchmark_sharpe`` (Bailey &
    Lopez de Prado 2012):

    .. math:: \\mathrm{PSR} = \\Phi\\left(\\frac{(\\widehat{SR} - SR^*)\\sqrt{n-1}}
              {\\sqrt{1 - \\hat\\gamma_3 \\widehat{SR} + \\tfrac{\\hat\\gamma_4 - 1}{4}\\widehat{SR}^2}}\\right)

    with :math:`\\widehat{SR}` per period (ddof=1), :math:`\\hat\\gamma_3` the skewness and
    :math:`\\hat\\gamma_4` the (Pearson, non-excess) kurtosis of the returns.
    """
    sr, g3, g4, n = _sr_moments(returns)
    denom = 1 - g3 * sr + (g4 - 1) / 4 * sr**2
    return float(norm.cdf((sr - benchmark_sharpe) * math.sqrt(n - 1) / math.sqrt(denom))) if denom > 0 else float("nan")


def expected_max_sharpe(trial_sharpes) -> float:
    """:math:`SR_0 = \\sqrt{V[SR_k]}\\big((1-\\gamma)\\Phi^{-1}(1 - 1/N) + \\gamma\\Phi^{-1}(1 - 1/(Ne))\\big)`:
    the Sharpe ratio the best of N unskilled trials would show (Bailey & Lopez de Prado 2014),
    V with ddof=1, :math:`\\gamma` the Euler-Mascheroni constant."""
    s = np.asarray(trial_sharpes, dtype=float)
    s = s[np.isfinite(s)]
    n = len(s)
    if n < 2:
        return 0.0
    return float(math.sqrt(np.var(s, ddof=1)) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1 / n)
                                                  + EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e))))


def deflated_sharpe_ratio(returns: pd.Series, trial_sharpes) -> float:
    """Deflated Sharpe Ratio: :func:`probabilistic_sharpe_ratio` against :func:`expected_max_sharpe`
    of the per-period Sharpe ratios of all trials tried (Bailey & Lopez de Prado 2014)."""
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(trial_sharpes))


def summary(returns: pd.Series, periods_per_year: int = 365) -> dict[str, float]:
    """The return-series metrics of :data:`METRIC_NAMES`."""
    return {
        "total_return": total_return(returns),
        "annualized_return": annualized_return(returns, periods_per_year),
        "annualized_volatility": annualized_volatility(returns, periods_per_year),
        "sharpe_ratio": sharpe_ratio(returns, periods_per_year),
        "sortino_ratio": sortino_ratio(returns, periods_per_year),
        "calmar_ratio": calmar_ratio(returns, periods_per_year),
        "omega_ratio": omega_ratio(returns),
        "max_drawdown": max_drawdown(returns),
        "max_drawdown_duration": max_drawdown_duration(returns),
        "var_95": value_at_risk(returns, 0.95), "cvar_95": conditional_value_at_risk(returns, 0.95),
        "var_99": value_at_risk(returns, 0.99), "cvar_99": conditional_value_at_risk(returns, 0.99),
        "probabilistic_sharpe_ratio": probabilistic_sharpe_ratio(returns),
    }


def trade_summary(ledger: pd.DataFrame, daily_equity: pd.Series) -> dict[str, float]:
    """Per-trade figures of a backtest ledger (``core.backtest.run_backtest``): win rate, profit
    factor (gross wins over gross losses, net of costs), average win and loss, turnover (traded
    notional, both legs, over mean equity, per day), exposure (share of time with a position
    open), mean MAE and MFE (as returns, when the ledger has them) and costs as a share of the
    gross P&L at mids (slippage + fees + funding over the sum of |gross P&L|)."""
    pnl = ledger["net_pnl"].to_numpy(dtype=float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    days = max(len(daily_equity), 1)
    held = np.asarray((pd.DatetimeIndex(ledger["exit_ts"]) - pd.DatetimeIndex(ledger["entry_ts"])).total_seconds())
    span = days * 86400.0
    costs = ledger[["slippage_cost", "fee_cost", "funding_cost"]].to_numpy(dtype=float).sum()
    gross = np.abs(ledger["gross_pnl"].to_numpy(dtype=float)).sum()
    out = {
        "trades": float(len(pnl)),
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else float("nan"),
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) and losses.sum() < 0 else float("nan"),
        "average_win": float(wins.mean()) if len(wins) else float("nan"),
        "average_loss": float(losses.mean()) if len(losses) else float("nan"),
        "turnover_per_day": float(2 * ledger["notional"].sum() / daily_equity.mean() / days) if len(pnl) else 0.0,
        "exposure": float(min(1.0, held.sum() / span / max(ledger["symbol"].nunique(), 1))) if len(pnl) else 0.0,
        "cost_share_of_gross": float(costs / gross) if gross > 0 else float("nan"),
        "slippage_cost": float(ledger["slippage_cost"].sum()),
        "fee_cost": float(ledger["fee_cost"].sum()),
        "funding_cost": float(ledger["funding_cost"].sum()),
    }
    for col in ("mae", "mfe"):
        if col in ledger:
            out[f"mean_{col}"] = float(ledger[col].mean()) if len(pnl) else float("nan")
    return out
