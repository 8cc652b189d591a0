r"""Synthetic crypto L2 market: book snapshots and trades with a small, honest predictive signal.

Every later research step (features, triple-barrier labels, purged-CV models, backtests) is
exercised on this market before it sees real data, so it is built to look like a liquid
Binance spot book (spread, depth profile, level gaps, trade sizes and 1-second volatility were
matched by eye to an 11-minute real BTCUSDT/ETHUSDT capture with
:func:`atra_pipeline.core.raw.market_stats.market_stats`) and to contain one designed source of
short-horizon predictability, of known size.

Entry points: :func:`generate_market_day` (book, trades in the raw schema of
:mod:`atra_pipeline.core.raw.schema`), :func:`simulate_market_day` (the same plus the latent state,
for tests and for checking research code against the truth) and :func:`symbol_spec`.

Seeding and determinism
-----------------------
All randomness comes from ``np.random.default_rng(SeedSequence(seed, spawn_key=key))`` with an
integer key, never from global state or Python's ``hash()``. The symbol enters as
``crc32(symbol)``, the date as its proleptic ordinal ``d``:

* market daily returns ...... key (1, 0, 0)
* symbol daily returns ...... key (2, crc32(symbol), 0)
* market intraday factor .... key (3, d, 0)          (shared by all symbols of a date)
* symbol intraday paths ..... key (4, d, crc32(symbol))

so (seed, symbol, date) fixes the output, and a symbol's day never needs another symbol's day:
ETHUSDT recomputes the (cheap) market factor of its date, it does not generate BTCUSDT.

Generating process (time t in seconds, step :math:`\Delta = \text{interval\_ms}/1000`)
-------------------------------------------------------------------------------------
1. **Regimes** :math:`s_t \in \{\text{calm}, \text{trending}, \text{volatile}\}`: a continuous-time
   Markov chain, exponential holding times with means ``REGIME_MEAN_MINUTES`` (80/50/40 min),
   jump probabilities ``REGIME_TRANSITIONS``; the day starts in a state drawn from the
   stationary time shares. Each trending spell draws a drift sign :math:`\pm 1`. Regimes are
   market-wide and are not continuous across midnight.
2. **Market volatility** (per-second vol in units of :math:`\sigma_m`):
   :math:`v_t = S_v(\text{hour}_t)\,\exp(\bar\ell_t + h_t - \text{LOGVOL\_SD}^2)` where
   :math:`\bar\ell_t` is the log of the regime multiplier ``REGIME_VOL`` (0.75/1/1.9,
   normalised to unit mean square) smoothed by an EWMA of 60 s, :math:`h_t` a log-vol OU
   (stationary sd 0.35, time constant 30 min) and :math:`S_v` the intraday profile
   (:func:`intraday_vol_profile`, peak around 13-16 UTC, trough around 04-06 UTC, unit RMS).
3. **Market factor** increments :math:`dM_t = v_t(\sqrt{(1-j)\Delta}\,\varepsilon_t +
   \text{trend}_t\,\tfrac{K}{60}\Delta) + J_t`, :math:`\varepsilon_t \sim N(0,1)`,
   :math:`K` = ``TREND_SIGMAS_PER_HOUR`` (a trending hour drifts ~0.75 hourly sigmas),
   :math:`J_t` compound-Poisson jumps (``JUMP_RATE_PER_DAY`` = 3 a day, size
   :math:`\sqrt{v_t}` x ``JUMP_SIZE_1M`` (3) one-minute sigmas x a unit Laplace clipped at
   +-4, a share :math:`j` ~2% of the variance). :math:`\sigma_m` =
   ``MARKET_DAILY_VOL`` :math:`/\sqrt{86400}`.
4. **Latent order flow** of the symbol: :math:`f_t` AR(1) with unit variance and half-life
   ``FLOW_HALF_LIFE_S`` (90 s); :math:`g_t` = EWMA of :math:`f_{\le t}` (half-life
   ``DRIFT_HALF_LIFE_S`` 60 s) rescaled to unit variance.
5. **Trades**: counts per interval :math:`N_t \sim \text{Poisson}(\lambda_t\Delta)`,
   :math:`\lambda_t` = ``trades_per_min``/60 :math:`\cdot u_t`, with :math:`u_t = v_t e^{\eta_t}`
   the symbol's vol multiplier (:math:`\eta_t` a small symbol log-vol OU). Aggressor side
   :math:`P(\text{buy}) = \text{sigmoid}(a f_t)`, ``a`` = ``SIDE_LOGIT``. Notional: with prob.
   ``SMALL_TRADE_SHARE`` a retail clip near ``min_notional``, else lognormal(median
   ``trade_quote_median``, sd ``TRADE_LOG_SD``); base amount = notional / day-open price on the
   lot grid. Each trade time is uniform (integer microseconds) strictly inside
   :math:`(t, t+\Delta)` and the trade executes against snapshot :math:`t`: a buy at its best
   ask, a sell at its best bid, walking to the level whose cumulative size covers the amount
   (amounts above the visible 10 levels are capped at that depth).
6. **Mid log-return** of the symbol over :math:`(t, t+\Delta]`, :math:`\sigma =`
   ``daily_vol`` :math:`/\sqrt{86400}`, :math:`\sigma_\iota^2 = \sigma^2 - \beta^2\sigma_m^2`:

   .. math::
       dx_t = \sqrt{1-w}\,(\beta\sigma_m\,dM^{noise}_t + \sigma_\iota u_t\sqrt\Delta\,\xi_t)
              + \beta\sigma_m\,dM^{trend}_t + \sqrt{w}\,\sigma u_t\sqrt\Delta\,z_t
              + \sigma u_t\,\tfrac{R}{\sqrt{60}}\,g_t\,\Delta

   :math:`z_t` is the *unexpected* signed square-root trade flow of the interval
   (:math:`\sum \pm\sqrt{a_i/a_{ref}}` minus its expectation given :math:`f_t`, over its sd):
   permanent impact, a share ``IMPACT_SHARE`` :math:`w` of the variance, contemporaneous only.
   The last term is **the signal**: a drift proportional to the EWMA of past order flow.
   :math:`R` (``SymbolSpec.signal_snr``) is the drift accumulated over one minute at
   :math:`g=1` divided by the 1-minute return sd. With the defaults, the 1-minute top-5 depth
   imbalance or trade-flow imbalance correlates with the next minute's return at roughly
   0.04-0.1; anything that finds far more is leaking the future.
7. **Book**: top-of-book at the latent mid rounded to the tick grid with a spread of
   :math:`k_t` ticks: :math:`k_t = 1` unless a persistent uniform (AR(1) Gaussian copula,
   ``SPREAD_TAU_S``) falls below :math:`p_t` = ``spread_wide_prob`` :math:`\times`
   ``REGIME_SPREAD`` :math:`\times S_s(\text{hour})\times u_t^{1/2}`, then :math:`k_t = 1 +
   \text{Geom}(1/\text{gap\_mean\_ticks})`. Deeper levels: gaps of 1 tick with prob.
   ``gap_one_share``, otherwise :math:`1 + \text{Geom}`, mean growing with :math:`\sqrt{u_t}`.
   Sizes (base units) per side and level :math:`i`:

   .. math::
       \log q_{i,t} = \log \bar q_i - \tfrac12 s_i^2 + s_i\,\zeta_{i,t} \pm b\,e^{-i/2} f_t
                      - c\,e^{-i/2} D_t / q_0 - \tfrac12\log u_t

   :math:`\bar q_0` = ``touch_depth`` (the touch queue, the largest, as in real Binance
   spot books), :math:`\bar q_i` = ``level_depth`` :math:`(1 + 0.12(i-1))` for
   :math:`i \ge 1` (growing deeper); :math:`\zeta` AR(1) (time constant 20 s, i.e. depletion and
   replenishment) plus white noise; :math:`\pm b f_t` tilts bids up and asks down when flow is
   buying (``BOOK_TILT``), the observable depth imbalance; :math:`D_t` is the decayed stock of
   aggressive volume that hit that side before :math:`t` (trades deplete the queue, which
   replenishes with time constant 5 s); volatility bursts thin the book. Sizes are rounded to
   the lot grid, at least one lot.
8. **Continuity across midnight** (the brief's bridge approach). Daily log-opens come from a
   per-symbol daily sequence from ``EPOCH``: :math:`x_{n+1} = \phi x_n + r_n`,
   :math:`r_n = \beta r^m_n + \iota_n` (market daily shocks shared, idiosyncratic ones seeded by
   the symbol, variance ``daily_vol``:math:`^2`), :math:`\phi = 1 - 1/90` (a slow pull to
   ``start_price`` so prices stay in a realistic range, within a factor ~1.5-2 of it; the
   implied drift is typically < 0.1 daily sd, i.e. ~0.002 one-minute sd, negligible). The
   intraday path :math:`W` (the sum of :math:`dx`) is pinned to the next day's open by a
   bridge in variance time:
   :math:`X_t = W_t + c_t (Z - W_T)`, :math:`c_t` the cumulative share of the expected step
   variances, :math:`Z = x_{n+1} - x_n`. Thus the open of date n is exactly
   :math:`\log P_0 + x_n` and the last snapshot of a day is one ordinary step away from the
   next day's first snapshot.

   *Caveat*: with Var(Z) equal to the day's own variance :math:`V = \sum_t \mathrm{Var}(dx_t)`
   the pinned path has exactly the law of the unpinned one (no fake momentum or reversal).
   Z has the *expected* daily variance, while V depends on the day's regimes, so a volatile
   day (V > Var Z) is pulled slightly towards its pinned close (mild mean reversion) and a
   calm day slightly stretched; the correction :math:`c_t(Z-W_T)` is a constant drift per
   unit variance-time of order 0.04 one-minute sds. It also means the step that crosses
   midnight is an ordinary step of the *previous* day's variance path. Daily returns are
   Gaussian (no fat tails at the daily scale). Trade amounts use the day-open price.

Units: prices in quote currency on the tick grid; sizes and amounts in base units on the lot
grid; ``ts`` naive UTC ``datetime64[us]``.
"""

from __future__ import annotations

import datetime as _dt
import math
import zlib
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from scipy.special import ndtr

from atra_pipeline.core.raw.schema import L2_COLUMNS, N_LEVELS, TRADE_COLUMNS

__all__ = [
    "SymbolSpec",
    "SYMBOL_SPECS",
    "SyntheticDay",
    "REGIMES",
    "EPOCH",
    "symbol_spec",
    "generate_market_day",
    "simulate_market_day",
    "daily_open_price",
    "intraday_vol_profile",
    "intraday_spread_profile",
]

# --------------------------------------------------------------------------------------------
# Process parameters (shared by all symbols)
# --------------------------------------------------------------------------------------------
MS_PER_DAY = 86_400_000
DAY_S = 86_400.0
EPOCH = _dt.date(2015, 1, 1)
"""First supported date; the daily price sequence starts here at ``start_price``."""
HORIZON_DAYS = 50 * 366
"""The daily sequence is drawn for this many days, so dates up to ~EPOCH + 50 years work."""
DAILY_PHI = 1.0 - 1.0 / 90.0
MARKET_DAILY_VOL = 0.03

REGIMES = ("calm", "trending", "volatile")
REGIME_MEAN_MINUTES = np.array([80.0, 50.0, 40.0])
REGIME_TRANSITIONS = np.array([[0.0, 0.6, 0.4], [0.65, 0.0, 0.35], [0.7, 0.3, 0.0]])
REGIME_VOL_RAW = np.array([0.75, 1.0, 1.9])
REGIME_SPREAD = np.array([1.0, 1.6, 4.0])
REGIME_SMOOTH_S = 60.0
TREND_SIGMAS_PER_HOUR = 0.75

LOGVOL_SD, LOGVOL_TAU_S = 0.35, 1800.0
SYMBOL_LOGVOL_SD, SYMBOL_LOGVOL_TAU_S = 0.15, 1800.0
JUMP_RATE_PER_DAY, JUMP_SIZE_1M, JUMP_MAX_SD = 3.0, 3.0, 4.0

FLOW_HALF_LIFE_S = 90.0
DRIFT_HALF_LIFE_S = 60.0
SIDE_LOGIT = 0.4
BOOK_TILT = 0.3
TILT_DECAY_LEVELS = 2.0
IMPACT_SHARE = 0.1

SMALL_TRADE_SHARE = 0.4
SMALL_TRADE_LOG_SD = 0.35
TRADE_LOG_SD = 2.1

SPREAD_TAU_S = 5.0
DEPTH_SLOPE = 0.12
SIZE_SD_TOUCH, SIZE_SD_LEVEL, SIZE_IID_SD = 0.6, 0.9, 0.2
SIZE_TAU_S = 20.0
DEPLETION, DEPLETION_TAU_S = 0.3, 5.0
DEPTH_VOL_ELASTICITY = 0.5
TRADE_VOL_ELASTICITY = 1.0


def _stationary_time_share() -> np.ndarray:
    vals, vecs = np.linalg.eig(REGIME_TRANSITIONS.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    share = pi / pi.sum() * REGIME_MEAN_MINUTES
    return share / share.sum()


REGIME_TIME_SHARE = _stationary_time_share()
REGIME_VOL = REGIME_VOL_RAW / math.sqrt(float(REGIME_TIME_SHARE @ REGIME_VOL_RAW**2))


# --------------------------------------------------------------------------------------------
# Symbol specifications
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SymbolSpec:
    """Static description of one synthetic market.

    Parameters
    ----------
    tick, lot : float
        Price tick and size lot; every price / size is a multiple of them.
    start_price : float
        Price at ``EPOCH`` and the level the daily log-price is slowly pulled back to.
    daily_vol : float
        Daily log-return sd; must be at least ``beta * MARKET_DAILY_VOL``.
    beta : float
        Exposure to the market factor (BTCUSDT: 1 with no idiosyncratic part).
    touch_depth : float
        Mean size (base units) of the best level on each side.
    level_depth : float
        Mean size of level 1; level i >= 1 has mean ``level_depth * (1 + 0.12 (i - 1))``.
    trades_per_min : float
        Average trade count per minute (scaled by volatility).
    trade_quote_median : float
        Median notional (quote) of the non-retail trade component.
    min_notional : float
        Smallest trade notional (Binance: 5 USDT).
    spread_wide_prob : float
        Baseline probability that the spread exceeds one tick (calm regime, average hour).
    gap_one_share : float
        Probability that two adjacent levels are one tick apart.
    gap_mean_ticks : float
        Mean gap (ticks) between adjacent levels when they are not adjacent ticks; also the
        mean extra width of a wide spread. Must be > 2.
    signal_snr : float
        R: one-minute drift at unit order-flow EWMA over the one-minute return sd.
    """

    tick: float
    lot: float
    start_price: float
    daily_vol: float
    beta: float
    touch_depth: float
    level_depth: float
    trades_per_min: float
    trade_quote_median: float
    min_notional: float = 5.0
    spread_wide_prob: float = 0.1
    gap_one_share: float = 0.4
    gap_mean_ticks: float = 4.0
    signal_snr: float = 0.11
    tick_decimals: int = field(init=False, repr=False, compare=False)
    lot_decimals: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("tick", "lot", "start_price", "daily_vol", "touch_depth", "level_depth",
                     "trades_per_min", "trade_quote_median", "min_notional"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"SymbolSpec.{name} must be positive and finite, got {getattr(self, name)!r}")
        if self.beta < 0 or self.daily_vol < self.beta * MARKET_DAILY_VOL - 1e-12:
            raise ValueError("SymbolSpec needs 0 <= beta and daily_vol >= beta * MARKET_DAILY_VOL "
                             f"({self.beta} * {MARKET_DAILY_VOL} > {self.daily_vol})")
        if not 0 <= self.spread_wide_prob < 1 or not 0 <= self.gap_one_share <= 1 or self.gap_mean_ticks <= 2:
            raise ValueError("SymbolSpec: spread_wide_prob in [0, 1), gap_one_share in [0, 1], gap_mean_ticks > 2")
        object.__setattr__(self, "tick_decimals", _decimals(self.tick))
        object.__setattr__(self, "lot_decimals", _decimals(self.lot))

    @property
    def idio_vol(self) -> float:
        """Daily sd of the idiosyncratic (non-market) return."""
        return math.sqrt(max(self.daily_vol**2 - (self.beta * MARKET_DAILY_VOL) ** 2, 0.0))


def _decimals(x: float) -> int:
    exp = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -int(exp))


SYMBOL_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec(tick=0.01, lot=0.00001, start_price=60_000.0, daily_vol=0.03, beta=1.0,
                          touch_depth=2.0, level_depth=0.08, trades_per_min=900.0,
                          trade_quote_median=350.0, spread_wide_prob=0.08, gap_one_share=0.3,
                          gap_mean_ticks=50.0),
    "ETHUSDT": SymbolSpec(tick=0.01, lot=0.0001, start_price=2_600.0, daily_vol=0.037, beta=1.1,
                          touch_depth=14.0, level_depth=1.5, trades_per_min=650.0,
                          trade_quote_median=150.0, spread_wide_prob=0.08, gap_one_share=0.45,
                          gap_mean_ticks=4.0),
    "SOLUSDT": SymbolSpec(tick=0.01, lot=0.001, start_price=150.0, daily_vol=0.048, beta=1.3,
                          touch_depth=150.0, level_depth=25.0, trades_per_min=400.0,
                          trade_quote_median=120.0, spread_wide_prob=0.1, gap_one_share=0.6,
                          gap_mean_ticks=2.5),
}


def _crc(symbol: str) -> int:
    return zlib.crc32(symbol.encode("utf-8"))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)))


def symbol_spec(symbol: str) -> SymbolSpec:
    """The :class:`SymbolSpec` of ``symbol``: from :data:`SYMBOL_SPECS`, else derived from its name.

    An unknown symbol gets a spec drawn from ``SeedSequence(0x5EC, spawn_key=(5, crc32(symbol),
    0))`` (independent of the simulation seed, so a symbol is the same market under every
    seed): start price log-uniform in [0.01, 1000]; tick = 10^(floor(log10 price) - 4), so the
    price is 10^4..10^5 ticks; lot = 10^floor(log10(0.05 / price)); daily vol U[0.045, 0.08];
    beta U[0.9, 1.6] (daily vol raised to 1.15 * beta * 3% if needed); touch depth
    10^U[3.5, 4.5] quote, levels 3-10x thinner; 50-300 trades/min of median 50-200 quote;
    wide-spread probability U[0.1, 0.3]; one-tick gaps U[0.4, 0.7]; wide gaps U[2.5, 6] ticks.

    Parameters
    ----------
    symbol : str
        Exchange symbol without separator, e.g. ``"BTCUSDT"``.

    Returns
    -------
    SymbolSpec
    """
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    if symbol in SYMBOL_SPECS:
        return SYMBOL_SPECS[symbol]
    rng = _rng(0x5EC, 5, _crc(symbol), 0)
    price = 10 ** rng.uniform(-2.0, 3.0)
    tick = 10.0 ** (math.floor(math.log10(price)) - 4)
    lot = 10.0 ** math.floor(math.log10(0.05 / price))
    tick, lot = float(f"{tick:.0e}"), float(f"{lot:.0e}")
    price = round(price / tick) * tick
    beta = rng.uniform(0.9, 1.6)
    daily_vol = max(rng.uniform(0.045, 0.08), 1.15 * beta * MARKET_DAILY_VOL)
    touch_quote = 10 ** rng.uniform(3.5, 4.5)
    return SymbolSpec(
        tick=tick, lot=lot, start_price=round(price, _decimals(tick)), daily_vol=daily_vol, beta=beta,
        touch_depth=touch_quote / price, level_depth=touch_quote / price / rng.uniform(3.0, 10.0),
        trades_per_min=rng.uniform(50.0, 300.0), trade_quote_median=rng.uniform(50.0, 200.0),
        spread_wide_prob=rng.uniform(0.1, 0.3), gap_one_share=rng.uniform(0.4, 0.7),
        gap_mean_ticks=rng.uniform(2.5, 6.0),
    )


# --------------------------------------------------------------------------------------------
# Intraday seasonality
# --------------------------------------------------------------------------------------------
def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _vol_raw(hour: np.ndarray) -> np.ndarray:
    return (1.0 + 0.8 * _bump(hour, 14.5, 1.3) + 0.25 * _bump(hour, 8.0, 1.2)
            + 0.15 * _bump(hour, 0.5, 1.0) - 0.3 * _bump(hour, 5.0, 2.0))


def _spread_raw(hour: np.ndarray) -> np.ndarray:
    return 1.0 + 0.6 * _bump(hour, 14.5, 1.5) + 0.3 * _bump(hour, 21.5, 1.5)


_GRID = (np.arange(1440) + 0.5) / 60.0
_VOL_NORM = float(np.sqrt(np.mean(_vol_raw(_GRID) ** 2)))
_SPREAD_NORM = float(np.mean(_spread_raw(_GRID)))


def intraday_vol_profile(hour) -> np.ndarray:
    """Intraday volatility multiplier S_v by UTC hour (float, 0-24), unit root-mean-square.

    Peaks around 14:30 UTC (US open / Europe overlap), with smaller bumps at the Europe open
    (08:00) and midnight, and a trough around 05:00 UTC.

    Parameters
    ----------
    hour : float or array_like
        Hour of the UTC day, e.g. 13.5 for 13:30.

    Returns
    -------
    numpy.ndarray
    """
    return _vol_raw(np.asarray(hour, dtype=float)) / _VOL_NORM


def intraday_spread_profile(hour) -> np.ndarray:
    """Intraday multiplier S_s of the wide-spread probability by UTC hour, unit mean.

    Peaks around 14:30 UTC, with a second bump at the 21-22 UTC US close / Asia handover.

    Parameters
    ----------
    hour : float or array_like
        Hour of the UTC day.

    Returns
    -------
    numpy.ndarray
    """
    return _spread_raw(np.asarray(hour, dtype=float)) / _SPREAD_NORM


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
def _ou(rng: np.random.Generator, shape, dts: float, tau_s: float) -> np.ndarray:
    """Stationary unit-variance AR(1) (discretised OU with time constant tau_s), along axis 0."""
    phi = math.exp(-dts / tau_s)
    e = rng.standard_normal(shape)
    e[1:] *= math.sqrt(1.0 - phi * phi)
    return lfilter([1.0], [1.0, -phi], e, axis=0)


def _ewma(x: np.ndarray, dts: float, half_life_s: float) -> np.ndarray:
    """EWMA of x (value at t includes x_t), started at x_0."""
    a = 1.0 - 0.5 ** (dts / half_life_s)
    y, _ = lfilter([a], [1.0, -(1.0 - a)], x, zi=[(1.0 - a) * x[0]])
    return y


def _regimes(rng: np.random.Generator, t_sec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    state = int(rng.choice(3, p=REGIME_TIME_SHARE))
    ends, states, signs = [], [], []
    clock = 0.0
    while clock < DAY_S:
        clock += rng.exponential(REGIME_MEAN_MINUTES[state] * 60.0)
        ends.append(clock)
        states.append(state)
        signs.append(1 if rng.random() < 0.5 else -1)
        state = int(rng.choice(3, p=REGIME_TRANSITIONS[state]))
    seg = np.searchsorted(np.asarray(ends), t_sec, side="right")
    st = np.asarray(states, dtype=np.int8)[seg]
    trend = np.where(st == 1, np.asarray(signs, dtype=np.int8)[seg], 0).astype(np.int8)
    return st, trend


def _market_factor(seed: int, ordinal: int, n: int, dts: float) -> dict[str, np.ndarray]:
    """Market-wide regime, volatility and unit-sigma increments of one date (shared by symbols)."""
    rng = _rng(seed, 3, ordinal, 0)
    t = np.arange(n) * dts
    state, trend = _regimes(rng, t)
    lreg = _ewma(np.log(REGIME_VOL[state]), dts, REGIME_SMOOTH_S * math.log(2.0))
    h = LOGVOL_SD * _ou(rng, n, dts, LOGVOL_TAU_S)
    v = np.exp(lreg + h - LOGVOL_SD**2) * intraday_vol_profile(t / 3600.0)
    jump_share = JUMP_RATE_PER_DAY * JUMP_SIZE_1M**2 * 60.0 / DAY_S
    eps = rng.standard_normal(n)
    noise = v * math.sqrt((1.0 - jump_share) * dts) * eps
    n_jumps = rng.poisson(JUMP_RATE_PER_DAY * n * dts / DAY_S)
    j_idx = rng.integers(0, n, n_jumps)
    j_size = np.clip(rng.laplace(0.0, 1.0 / math.sqrt(2.0), n_jumps), -JUMP_MAX_SD, JUMP_MAX_SD)
    np.add.at(noise, j_idx, np.sqrt(v[j_idx]) * j_size * JUMP_SIZE_1M * math.sqrt(60.0))
    drift = v * trend * (TREND_SIGMAS_PER_HOUR / 60.0) * dts
    return {"state": state, "trend": trend, "v": v, "h": h, "noise": noise, "drift": drift}


def _daily_log_opens(spec: SymbolSpec, crc: int, seed: int, day_index: int) -> tuple[float, float]:
    """log(open / start_price) of day ``day_index`` (days since EPOCH) and of the next day."""
    r = spec.beta * MARKET_DAILY_VOL * _rng(seed, 1, 0, 0).standard_normal(HORIZON_DAYS)
    if spec.idio_vol > 0:
        r = r + spec.idio_vol * _rng(seed, 2, crc, 0).standard_normal(HORIZON_DAYS)
    x = lfilter([1.0], [1.0, -DAILY_PHI], r[: day_index + 1])  # x[k] = log-open of day k + 1
    return (float(x[day_index - 1]) if day_index > 0 else 0.0), float(x[day_index])


def _as_date(date) -> _dt.date:
    if isinstance(date, _dt.date) and not isinstance(date, _dt.datetime):
        return date
    try:
        ts = pd.Timestamp(date)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"date must be a date, got {date!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"date must be a date, got {date!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if ts != ts.normalize():
        raise ValueError(f"date must be a calendar day (midnight), got {date!r}")
    return ts.date()


def _check_args(symbol: str, date, seed: int, interval_ms: int) -> tuple[_dt.date, int]:
    day = _as_date(date)
    day_index = (day - EPOCH).days
    if not 0 <= day_index < HORIZON_DAYS - 1:
        raise ValueError(f"date {day} outside the supported range {EPOCH} .. "
                         f"{EPOCH + _dt.timedelta(days=HORIZON_DAYS - 2)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if (isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, np.integer))
            or interval_ms < 100 or MS_PER_DAY % interval_ms):
        raise ValueError(f"interval_ms must be an integer >= 100 dividing 86_400_000, got {interval_ms!r}")
    symbol_spec(symbol)
    return day, day_index


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticDay:
    """One simulated symbol-day.

    Attributes
    ----------
    book : pandas.DataFrame
        Snapshots in ``L2_COLUMNS`` order.
    trades : pandas.DataFrame
        Trades in ``TRADE_COLUMNS`` order.
    latent : pandas.DataFrame
        The hidden state per snapshot, aligned with ``book``: ``ts``, ``regime`` (name),
        ``trend`` (-1/0/+1), ``vol`` (the symbol's volatility multiplier u_t, mean square ~1),
        ``sigma_1s_bps`` (sd of a 1-second return at t), ``flow`` (f_t), ``drift_bps`` (the
        signal's expected log-return over the next snapshot interval, bps), ``mid`` (the
        continuous latent mid before tick rounding), ``spread_ticks``.
    """

    book: pd.DataFrame
    trades: pd.DataFrame
    latent: pd.DataFrame


def daily_open_price(symbol: str, date, *, seed: int = 7) -> float:
    """The latent mid at 00:00:00 UTC of ``date`` (the value the day's path starts from).

    Parameters
    ----------
    symbol : str
        Symbol, see :func:`symbol_spec`.
    date : date-like
        UTC calendar day.
    seed : int, default 7
        Simulation seed.

    Returns
    -------
    float
        ``start_price * exp(x_n)`` of the daily sequence; equals the close of the previous day.
    """
    day, day_index = _check_args(symbol, date, seed, 1000)
    spec = symbol_spec(symbol)
    x0, _ = _daily_log_opens(spec, _crc(symbol), int(seed), day_index)
    return float(spec.start_price * math.exp(x0))


def generate_market_day(symbol: str, date, *, seed: int = 7, interval_ms: int = 1000,
                        exchange: str = "synthetic",
                        spec: SymbolSpec | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Book snapshots and trades of one synthetic UTC day, in the raw schema.

    Parameters
    ----------
    symbol : str
        E.g. ``"BTCUSDT"``; unknown symbols get a spec derived from the name (:func:`symbol_spec`).
    date : date-like
        UTC calendar day (``datetime.date``, ``"2024-03-01"``, midnight ``Timestamp``, ...),
        between :data:`EPOCH` and ~50 years later.
    seed : int, default 7
        Non-negative simulation seed. (seed, symbol, date) determines the output.
    interval_ms : int, default 1000
        Snapshot interval; an integer >= 100 that divides 86_400_000.
    exchange : str, default "synthetic"
        Value of the ``exchange`` column.
    spec : SymbolSpec, optional
        Override the symbol's spec, e.g. ``dataclasses.replace(symbol_spec("BTCUSDT"),
        signal_snr=0.0)`` for a market without the designed signal (a null for leak checks).
        The random streams stay those of (seed, symbol, date).

    Returns
    -------
    book : pandas.DataFrame
        ``86_400_000 / interval_ms`` rows in ``L2_COLUMNS`` order, ``ts`` at exact multiples of
        ``interval_ms`` from 00:00:00.000 (``datetime64[us]``, naive UTC); 10 levels per side,
        bids strictly descending, asks strictly ascending, never crossed; prices on the tick
        grid, sizes positive multiples of the lot.
    trades : pandas.DataFrame
        ``TRADE_COLUMNS``, sorted by ``ts``, every ``ts`` strictly between two snapshots; a buy
        (sell) executes at one of the ask (bid) prices of the preceding snapshot; ``trade_id``
        ``"YYYYMMDD-n"`` unique per symbol-day.

    See Also
    --------
    simulate_market_day : the same day together with its latent state.
    """
    day = simulate_market_day(symbol, date, seed=seed, interval_ms=interval_ms, exchange=exchange, spec=spec)
    return day.book, day.trades


def simulate_market_day(symbol: str, date, *, seed: int = 7, interval_ms: int = 1000,
                        exchange: str = "synthetic", spec: SymbolSpec | None = None) -> SyntheticDay:
    """Simulate one symbol-day and return book, trades and the latent state.

    Parameters are those of :func:`generate_market_day`; the generating process is described
    in the module docstring.

    Returns
    -------
    SyntheticDay
    """
    day, day_index = _check_args(symbol, date, seed, interval_ms)
    seed = int(seed)
    interval_ms = int(interval_ms)
    if spec is None:
        spec = symbol_spec(symbol)
    elif not isinstance(spec, SymbolSpec):
        raise ValueError(f"spec must be a SymbolSpec, got {type(spec).__name__}")
    crc = _crc(symbol)
    n = MS_PER_DAY // interval_ms
    dts = interval_ms / 1000.0
    interval_us = interval_ms * 1000

    mkt = _market_factor(seed, day.toordinal(), n, dts)
    rng = _rng(seed, 4, day.toordinal(), crc)
    x_open, x_next = _daily_log_opens(spec, crc, seed, day_index)
    open_price = spec.start_price * math.exp(x_open)

    # -- symbol volatility and latent order flow --------------------------------------------
    u = mkt["v"] * np.exp(SYMBOL_LOGVOL_SD * _ou(rng, n, dts, SYMBOL_LOGVOL_TAU_S) - SYMBOL_LOGVOL_SD**2)
    flow = _ou(rng, n, dts, FLOW_HALF_LIFE_S / math.log(2.0))
    g = _ewma(flow, dts, DRIFT_HALF_LIFE_S)
    phi_f = 0.5 ** (dts / FLOW_HALF_LIFE_S)
    b = 0.5 ** (dts / DRIFT_HALF_LIFE_S)
    a = 1.0 - b
    g /= math.sqrt(a * a * (1 + b * phi_f) / ((1 - b * b) * (1 - b * phi_f)))

    # -- trades: counts, sides, amounts ------------------------------------------------------
    lam = spec.trades_per_min / 60.0 * u**TRADE_VOL_ELASTICITY  # per second
    counts = rng.poisson(lam * dts)
    gi = np.repeat(np.arange(n), counts)
    n_tr = gi.size
    p_buy = 1.0 / (1.0 + np.exp(-SIDE_LOGIT * flow))
    is_buy = rng.random(n_tr) < p_buy[gi]
    small = rng.random(n_tr) < SMALL_TRADE_SHARE
    z_amt = rng.standard_normal(n_tr)
    notional = np.where(small, spec.min_notional * np.exp(SMALL_TRADE_LOG_SD * np.abs(z_amt)),
                        np.maximum(spec.trade_quote_median * np.exp(TRADE_LOG_SD * z_amt), spec.min_notional))
    min_lots = max(1.0, math.ceil(spec.min_notional / open_price / spec.lot))
    lots = np.maximum(np.rint(notional / open_price / spec.lot), min_lots)
    offsets = rng.integers(1, interval_us, n_tr)  # strictly inside (g, g + interval)

    # unexpected signed sqrt-flow -> permanent impact
    ref = spec.trade_quote_median / open_price / spec.lot
    q = np.sqrt(lots / ref)
    # moments of sqrt(notional / median) and notional / median under the trade-size mixture
    k_sm = SMALL_TRADE_LOG_SD
    small_ratio = spec.min_notional / spec.trade_quote_median
    e_abs = (SMALL_TRADE_SHARE * math.sqrt(small_ratio) * 2 * math.exp(k_sm**2 / 8) * float(ndtr(k_sm / 2))
             + (1 - SMALL_TRADE_SHARE) * math.exp(TRADE_LOG_SD**2 / 8))
    e_sq = (SMALL_TRADE_SHARE * small_ratio * 2 * math.exp(k_sm**2 / 2) * float(ndtr(k_sm))
            + (1 - SMALL_TRADE_SHARE) * math.exp(TRADE_LOG_SD**2 / 2))
    signed_q = np.bincount(gi, weights=np.where(is_buy, q, -q), minlength=n)
    z_imp = (signed_q - lam * dts * (2 * p_buy - 1) * e_abs) / np.sqrt(lam * dts * e_sq)

    # -- mid path -----------------------------------------------------------------------------
    sig_m = MARKET_DAILY_VOL / math.sqrt(DAY_S)
    sig = spec.daily_vol / math.sqrt(DAY_S)
    sig_i = spec.idio_vol / math.sqrt(DAY_S)
    w = IMPACT_SHARE
    eps_i = rng.standard_normal(n)
    signal = sig * u * (spec.signal_snr / math.sqrt(60.0)) * g * dts
    dx = (math.sqrt(1 - w) * (spec.beta * sig_m * mkt["noise"] + sig_i * u * math.sqrt(dts) * eps_i)
          + spec.beta * sig_m * mkt["drift"] + math.sqrt(w) * sig * u * math.sqrt(dts) * z_imp + signal)
    step_var = ((1 - w) * (spec.beta**2 * sig_m**2 * mkt["v"] ** 2 + sig_i**2 * u**2) + w * sig**2 * u**2) * dts
    walk = np.concatenate(([0.0], np.cumsum(dx)))
    c = np.concatenate(([0.0], np.cumsum(step_var)))
    c /= c[-1]
    path = walk + c * ((x_next - x_open) - walk[-1])  # variance-time bridge to the next open
    log_mid = math.log(spec.start_price) + x_open + path[:n]
    mid = np.exp(log_mid)

    # -- book prices ----------------------------------------------------------------------------
    state = mkt["state"]
    hours = np.arange(n) * dts / 3600.0
    p_wide = np.clip(spec.spread_wide_prob * REGIME_SPREAD[state] * intraday_spread_profile(hours)
                     * np.sqrt(u), 0.0, 0.95)
    wide = ndtr(_ou(rng, n, dts, SPREAD_TAU_S)) < p_wide
    spread = 1 + np.where(wide, rng.geometric(1.0 / spec.gap_mean_ticks, n), 0)
    bid0 = np.floor(mid / spec.tick - spread / 2.0 + 0.5).astype(np.int64)
    ask0 = bid0 + spread
    gap_mean = np.maximum(spec.gap_mean_ticks * np.sqrt(u), 2.0)[:, None]  # (n, 1)
    gshape = (n, N_LEVELS - 1)
    gaps = []
    for _side in range(2):
        one = rng.random(gshape) < spec.gap_one_share
        far = 1 + rng.geometric(np.broadcast_to(1.0 / (gap_mean - 1.0), gshape))
        gaps.append(np.where(one, 1, far).cumsum(axis=1))
    bid_t = np.concatenate((bid0[:, None], bid0[:, None] - gaps[0]), axis=1)
    ask_t = np.concatenate((ask0[:, None], ask0[:, None] + gaps[1]), axis=1)

    # -- book sizes -----------------------------------------------------------------------------
    lvl = np.arange(N_LEVELS)
    mean_sz = np.where(lvl == 0, spec.touch_depth, spec.level_depth * (1 + DEPTH_SLOPE * (lvl - 1)))
    sd = np.where(lvl == 0, SIZE_SD_TOUCH, SIZE_SD_LEVEL)
    tilt_w = np.exp(-lvl / TILT_DECAY_LEVELS)
    base = np.log(mean_sz) - 0.5 * (sd**2 + SIZE_IID_SD**2)
    amount = lots * spec.lot
    decay = math.exp(-dts / DEPLETION_TAU_S)
    common = base[None, :] - DEPTH_VOL_ELASTICITY * np.log(u)[:, None]
    sizes = []
    for side_sign, hit_by_buys in ((1.0, False), (-1.0, True)):
        noise = sd * _ou(rng, (n, N_LEVELS), dts, SIZE_TAU_S) + SIZE_IID_SD * rng.standard_normal((n, N_LEVELS))
        vol_hit = np.bincount(gi, weights=np.where(is_buy == hit_by_buys, amount, 0.0), minlength=n)
        stock = lfilter([(1 - decay) * DEPLETION_TAU_S / dts], [1.0, -decay], vol_hit)
        # shift: snapshot t only sees trades before t; t = 0 starts at the expected stock
        # (rate of aggressive volume on one side x time constant; E[amount] = e_sq * median)
        expected = lam[0] * 0.5 * e_sq * (spec.trade_quote_median / open_price) * DEPLETION_TAU_S
        stock = np.concatenate(([expected], stock[:-1]))
        logq = (common + noise + side_sign * BOOK_TILT * tilt_w[None, :] * flow[:, None]
                - DEPLETION * tilt_w[None, :] * (stock / spec.touch_depth)[:, None])
        sizes.append(np.maximum(np.rint(np.exp(logq) / spec.lot), 1.0))  # in lots
    bid_lots, ask_lots = sizes

    # -- trade prices: snapshot gi's ask (buy) / bid (sell), walking when the amount is large ---
    side_lots = np.where(is_buy, ask_lots[gi, 0], bid_lots[gi, 0])
    level = np.zeros(n_tr, dtype=np.int64)
    walk_idx = np.nonzero(lots > side_lots)[0]
    if walk_idx.size:
        book_lots = np.where(is_buy[walk_idx, None], ask_lots[gi[walk_idx]], bid_lots[gi[walk_idx]])
        cum = book_lots.cumsum(axis=1)
        level[walk_idx] = np.minimum((cum < lots[walk_idx, None]).sum(axis=1), N_LEVELS - 1)
        lots[walk_idx] = np.minimum(lots[walk_idx], cum[:, -1])
    px_ticks = np.where(is_buy, ask_t[gi, level], bid_t[gi, level])

    # -- frames -------------------------------------------------------------------------------
    day_start = np.datetime64(day.isoformat(), "us")
    ts = day_start + (np.arange(n, dtype=np.int64) * interval_us).astype("timedelta64[us]")
    tdec, ldec = spec.tick_decimals, spec.lot_decimals
    cols: dict[str, np.ndarray] = {"ts": ts}
    for name, arr, scale, dec in (("bid_px", bid_t, spec.tick, tdec), ("bid_sz", bid_lots, spec.lot, ldec),
                                  ("ask_px", ask_t, spec.tick, tdec), ("ask_sz", ask_lots, spec.lot, ldec)):
        vals = np.round(arr * scale, dec)
        for i in range(N_LEVELS):
            cols[f"{name}_{i}"] = vals[:, i]
    book = pd.DataFrame(cols)
    book.insert(1, "symbol", symbol)  # scalar broadcast: far faster than an object array
    book.insert(2, "exchange", exchange)
    book = book[L2_COLUMNS]

    # gi is non-decreasing and offsets lie inside their interval, so sorting the keys keeps
    # every trade in its interval; sides/amounts are i.i.d. within an interval.
    tkey = np.sort(gi * np.int64(interval_us) + offsets)
    trades = pd.DataFrame({
        "ts": day_start + tkey.astype("timedelta64[us]"),
        "price": np.round(px_ticks * spec.tick, tdec),
        "amount": np.round(lots * spec.lot, ldec),
    })
    trades.insert(1, "symbol", symbol)
    trades.insert(2, "exchange", exchange)
    trades["side"] = pd.Series(["sell", "buy"]).take(is_buy.astype(np.intp)).reset_index(drop=True)
    trades["trade_id"] = (day.strftime("%Y%m%d") + "-") + pd.Series(np.arange(n_tr)).astype(str)
    trades = trades[TRADE_COLUMNS]

    latent = pd.DataFrame({
        "ts": ts,
        "regime": pd.Categorical.from_codes(state, categories=list(REGIMES)),
        "trend": mkt["trend"],
        "vol": u,
        "sigma_1s_bps": 1e4 * np.sqrt(step_var / dts),
        "flow": flow,
        "drift_bps": 1e4 * signal,
        "mid": mid,
        "spread_ticks": spread,
    })
    return SyntheticDay(book=book, trades=trades, latent=latent)
