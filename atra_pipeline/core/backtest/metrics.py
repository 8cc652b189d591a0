"""Performance and risk metrics of a return series, and the overfitting-aware Sharpe statistics.

Every function takes a pandas Series of simple per-period returns: daily for a crypto book that
trades every day (``periods_per_year=365``), or hourly (``365 * 24``) when the sample is shorter
than :data:`HOURLY_BELOW_DAYS` days, where a handful of daily returns cannot carry a Sharpe ratio
(:func:`return_frequency`). A metric that needs more returns than it has is NaN, never a number
that means nothing (:data:`MIN_RETURNS`). Conventions are empyrical's (and quantstats'): sample
standard deviation (ddof=1), risk-free rate 0 by default and given per period, drawdowns on the
compounded wealth path starting from 1 before the first period, historical VaR as a percentile
with linear interpolation. The Probabilistic and Deflated Sharpe Ratios use the per-period (not
annualised) Sharpe ratio and the sample skewness and Pearson kurtosis without bias correction,
as in Bailey & Lopez de Prado (2012, 2014).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import kurtosis, norm, rankdata, skew

EULER_GAMMA = 0.5772156649015329
METRIC_NAMES = (
    "total_return", "annualized_return", "annualized_volatility", "sharpe_ratio", "sortino_ratio", "calmar_ratio",
    "omega_ratio", "max_drawdown", "max_drawdown_duration", "var_95", "cvar_95", "var_99", "cvar_99",
    "probabilistic_sharpe_ratio",
)
HOURLY_BELOW_DAYS = 30
"""Below this many days of data the statistics use hourly returns."""
PERIODS_PER_YEAR = {"D": 365, "h": 365 * 24}
"""24/7 markets: every day and every hour of the year counts."""
MIN_RETURNS = 3
"""Fewest returns for a dispersion or higher-moment statistic (Sharpe, Sortino, PSR, MinTRL)."""
CSCV_FREQ = "5min"
"""The trials' return frequency for CSCV (PBO, probability of loss). Ranks and signs do not depend
on annualisation, so CSCV reads finer returns than the Sharpe ratios: on a one-day tuning window,
16 blocks of hourly returns hold 1 or 2 returns each, whose block Sharpe ratios are noise (eight
equally good trials gave PBO 0.35 to 0.82 by block count); 5-minute returns give each block 18."""


def return_frequency(days: float) -> str:
    """``"h"`` (hourly returns) below :data:`HOURLY_BELOW_DAYS` days of data, else ``"D"``."""
    return "h" if days < HOURLY_BELOW_DAYS else "D"


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
    ``risk_free`` per period. NaN for fewer than :data:`MIN_RETURNS` periods or no variation."""
    r = _clean(returns) - risk_free
    sd = np.std(r, ddof=1) if len(r) >= MIN_RETURNS else float("nan")
    return float(np.mean(r) / sd * math.sqrt(periods_per_year)) if sd and sd > 0 else float("nan")


def sortino_ratio(returns: pd.Series, periods_per_year: int = 365, required_return: float = 0.0) -> float:
    """Annualised Sortino ratio: :math:`P\\,\\overline{r - m} / (\\sqrt{P}\\,DD)` with downside
    deviation :math:`DD = \\sqrt{\\tfrac1n \\sum_t \\min(r_t - m, 0)^2}` over all periods
    (+inf for a positive mean without any period below ``required_return``, as empyrical; NaN for
    fewer than :data:`MIN_RETURNS` periods)."""
    r = _clean(returns) - required_return
    if len(r) < MIN_RETURNS:
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
    """Per-period Sharpe ratio, skewness, Pearson kurtosis and count; NaNs when too few or constant."""
    r = _clean(returns)
    sd = np.std(r, ddof=1) if len(r) >= MIN_RETURNS else 0.0
    if not sd > 0:
        return float("nan"), float("nan"), float("nan"), len(r)
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
    if not (np.isfinite(benchmark_sharpe) and denom > 0):  # NaN moments compare False too
        return float("nan")
    return float(norm.cdf((sr - benchmark_sharpe) * math.sqrt(n - 1) / math.sqrt(denom)))


def minimum_track_record_length(returns: pd.Series, benchmark_sharpe: float = 0.0, confidence: float = 0.95) -> float:
    """Minimum Track Record Length, in periods (Bailey & Lopez de Prado 2012, eq. 11): how many
    returns like these it takes for the PSR against ``benchmark_sharpe`` to reach ``confidence``,

    .. math:: \\mathrm{MinTRL} = 1 + \\left(1 - \\hat\\gamma_3 \\widehat{SR} + \\tfrac{\\hat\\gamma_4 - 1}{4}
              \\widehat{SR}^2\\right) \\left(\\frac{Z_{\\alpha}}{\\widehat{SR} - SR^*}\\right)^2

    with the per-period Sharpe ratio and moments of :func:`probabilistic_sharpe_ratio` and
    :math:`Z_\\alpha = \\Phi^{-1}(\\text{confidence})`. +inf when :math:`\\widehat{SR} \\le SR^*` (no
    track record is long enough); NaN with too few returns to estimate the moments.
    """
    sr, g3, g4, _ = _sr_moments(returns)
    denom = 1 - g3 * sr + (g4 - 1) / 4 * sr**2
    if not (np.isfinite(benchmark_sharpe) and denom > 0):
        return float("nan")
    if sr <= benchmark_sharpe:
        return float("inf")
    return float(1 + denom * (norm.ppf(confidence) / (sr - benchmark_sharpe)) ** 2)


def expected_max_sharpe(trial_sharpes, n_trials: int | None = None) -> float:
    """:math:`SR_0 = \\sqrt{V[SR_k]}\\big((1-\\gamma)\\Phi^{-1}(1 - 1/N) + \\gamma\\Phi^{-1}(1 - 1/(Ne))\\big)`:
    the Sharpe ratio the best of N unskilled trials would show (Bailey & Lopez de Prado 2014),
    V with ddof=1 over the finite ``trial_sharpes``, :math:`\\gamma` the Euler-Mascheroni constant.

    ``n_trials``: N, every trial the study ran (pruned and failed ones were tried too, so they
    raise the bar), at least the number of Sharpe ratios given. NaN with fewer than 2 finite
    trial Sharpe ratios: the spread of the trials is unknown, so is the bar."""
    s = np.asarray(trial_sharpes, dtype=float)
    s = s[np.isfinite(s)]
    n = max(len(s), int(n_trials or 0))
    if len(s) < 2:
        return float("nan")
    return float(math.sqrt(np.var(s, ddof=1)) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1 / n)
                                                  + EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e))))


def deflated_sharpe_ratio(returns: pd.Series, trial_sharpes, n_trials: int | None = None) -> float:
    """Deflated Sharpe Ratio: :func:`probabilistic_sharpe_ratio` against :func:`expected_max_sharpe`
    of the per-period Sharpe ratios of the trials (Bailey & Lopez de Prado 2014), N =
    ``n_trials``. NaN when the bar or the moments are unknown."""
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(trial_sharpes, n_trials))


def _cscv_winners(performance: np.ndarray):
    """For every choice of half the blocks of ``performance[s, n]`` as in-sample: the index of the
    configuration best in-sample and every configuration's mean score out of sample."""
    n_blocks = performance.shape[0]
    if n_blocks % 2:
        raise ValueError(f"{n_blocks} blocks: CSCV splits them in two halves, so their number must be even")
    for in_sample in combinations(range(n_blocks), n_blocks // 2):
        out = [s for s in range(n_blocks) if s not in in_sample]
        yield int(np.argmax(performance[list(in_sample)].mean(axis=0))), performance[out].mean(axis=0)


def probability_of_backtest_overfitting(performance: np.ndarray) -> float:
    """PBO by combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de Prado & Zhu 2017).

    ``performance[s, n]``: the score (higher is better) of configuration ``n`` on block ``s``.
    For every choice of half the blocks as in-sample, pick the configuration best in-sample and
    take its relative rank :math:`\\omega` among all configurations out of sample; PBO is the share
    of choices with logit :math:`\\ln(\\omega / (1 - \\omega)) \\le 0`, i.e. where the in-sample
    winner is at or below the out-of-sample median. The blocks must be even in number, so both
    halves are the same size. NaN with fewer than 2 configurations or blocks.
    """
    n_blocks, n_configs = performance.shape
    if n_configs < 2 or n_blocks < 2:
        return float("nan")
    logits = [np.log(w / (1 - w)) for w in
              (rankdata(oos)[best] / (n_configs + 1) for best, oos in _cscv_winners(performance))]
    return float(np.mean(np.asarray(logits) <= 0))


def probability_of_loss(performance: np.ndarray) -> float:
    """The share of CSCV splits in which the in-sample winner does not earn out of sample: its
    mean score over the out-of-sample blocks is at or below 0 (Bailey, Borwein, Lopez de Prado &
    Zhu 2017, section 2.3, "probability of loss").

    PBO ranks the winner among the configurations; this reads its own score. Among configurations
    equally good, PBO is a coin flip whatever their skill, while this is near 0 when they all earn
    and near 1/2 when none does. Same ``performance[s, n]`` and even block count as
    :func:`probability_of_backtest_overfitting`; NaN with fewer than 2 blocks.
    """
    if performance.shape[0] < 2 or performance.shape[1] < 1:
        return float("nan")
    return float(np.mean([oos[best] <= 0 for best, oos in _cscv_winners(performance)]))


def cscv_blocks(n_periods: int, most: int = 16) -> int:
    """Blocks for CSCV over ``n_periods`` returns: even, at most ``most``, at least 2 returns
    each; 0 when there are fewer than 4 returns."""
    return min(most, 2 * (n_periods // 4))


def block_sharpe_ratios(returns: np.ndarray, n_blocks: int) -> np.ndarray:
    """``returns[t, n]`` (periods x configurations) cut into ``n_blocks`` contiguous blocks: the
    per-period Sharpe ratio of each configuration in each block (0 for a flat block)."""
    out = []
    for block in np.array_split(np.asarray(returns, dtype=float), n_blocks):
        sd = block.std(axis=0, ddof=1) if len(block) > 1 else np.zeros(block.shape[1])
        out.append(np.divide(block.mean(axis=0), sd, out=np.zeros(block.shape[1]), where=sd > 0))
    return np.array(out)


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


def trade_summary(ledger: pd.DataFrame, equity: pd.Series) -> dict[str, float]:
    """Per-trade figures of a backtest ledger (``core.backtest.run_backtest``): win rate, profit
    factor (gross wins over gross losses, net of costs), average win and loss, turnover (traded
    notional, both legs, over mean equity, per day), exposure (share of time with a position
    open), mean MAE and MFE (as returns, when the ledger has them) and costs as a share of the
    gross P&L at mids (slippage + fees + funding over the sum of |gross P&L|).

    ``equity`` is the equity curve whose first row is the starting equity, one period before
    the first (``core.backtest.equity_curve``): the days covered are its span, not its rows."""
    pnl = ledger["net_pnl"].to_numpy(dtype=float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    days = max((equity.index[-1] - equity.index[0]) / pd.Timedelta(days=1), 1 / 24) if len(equity) > 1 else 1.0
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
        "turnover_per_day": float(2 * ledger["notional"].sum() / equity.mean() / days) if len(pnl) else 0.0,
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
