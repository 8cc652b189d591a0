"""The feature catalogue: one line per column, the single source for column lists, docs and checks.

A family is one SQL file ``sql/features/<family>.sql`` that returns ``ts`` (the decision time)
and exactly the columns registered for it. Adding a feature = adding its SQL and its line here.

*Base* families read the book and trades. *Derived* families (``DERIVED_FAMILIES``: lags and
rolling statistics) read the base families' rows on the decision grid, which is extended back
over their span so that the first steps of a day lag into the previous day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OFI_WINDOWS = ("10s", "30s", "1m", "5m")
RETURN_WINDOWS = ("10s", "1m", "5m", "15m", "1h")
VOL_WINDOWS = ("1m", "5m", "15m", "1h")
WINDOW_SECONDS = {"10s": 10, "30s": 30, "1m": 60, "2m": 120, "5m": 300, "15m": 900, "1h": 3600}
REFERENCE_SYMBOL = "BTCUSDT"
MAX_BOOK_AGE_S = 30.0
"""A book older than this behind a feature's window makes the feature NULL (a frozen book is not
a quiet market). A few intervals of the slowest feed read (10-s books; captures and the synthetic
market sample every 1 s), far below an outage's minutes. Backtest and live build with it alike."""
CLOCK_FAMILIES = ("time",)
"""Families whose values are the clock's, read from no market data: a stale book leaves them as
they are, and a constant column of theirs says nothing about the data."""
MIN_ROWS_JUDGED_CONSTANT = 30
"""Rows (outside the warm-up, book fresh) a column needs before the constant-column rule judges
it: a few minutes of a partial day are no evidence that a column never moves."""
# The decision grid's default step: research features and live scoring must use the same one.
DECISION_STEP_S = 60


@dataclass(frozen=True)
class Feature:
    """One feature column: ``name`` (the column), ``family`` (its SQL file), ``window`` of data it
    looks back over (``None`` for an instantaneous value), and a one-line ``description``."""

    name: str
    family: str
    window: str | None
    description: str
    derived_from: str | None = None  # derived features: the base column they transform
    lag_steps: int = 0  # lags: decision steps back

    @property
    def lookback_s(self) -> int:
        """Seconds of data a base feature reads (derived features: see :meth:`lookback`)."""
        return WINDOW_SECONDS.get(self.window, 0)

    def lookback(self, step_s: int) -> int:
        """Seconds of data before t this feature reads at decision step ``step_s``."""
        if self.derived_from is None:
            return self.lookback_s
        return BY_NAME[self.derived_from].lookback_s + self.lag_steps * step_s + self.lookback_s


def _ofi() -> list[Feature]:
    out = []
    for w in OFI_WINDOWS:
        out += [
            Feature(f"ofi_raw_{w}", "ofi", w,
                    f"best-level order-flow imbalance (Cont et al. 2014) summed over {w}, base units"),
            Feature(f"ofi_norm_{w}", "ofi", w, f"ofi_raw_{w} / mean best-level depth (bid+ask)/2 over {w}"),
            Feature(f"ofi_weighted_{w}", "ofi", w,
                    f"10-level OFI, level m weighted 1/(m+1) (weights sum to 1), summed over {w}, base units"),
        ]
    return out


def _pressure() -> list[Feature]:
    return [
        Feature("pressure_imbalance_1", "pressure", None, "(b0 - a0) / (b0 + a0), best-level sizes"),
        Feature("pressure_imbalance_5", "pressure", None, "depth imbalance over levels 0-4"),
        Feature("pressure_imbalance_10", "pressure", None, "depth imbalance over levels 0-9"),
        Feature("pressure_imbalance_weighted", "pressure", None,
                "depth imbalance over 10 levels, sizes weighted 1/(1 + distance from mid in bps)"),
        Feature("pressure_asymmetry", "pressure", None,
                "(cb - ca)/(cb + ca), side closeness c = size-weighted mean of 1/(1 + distance in bps)"),
        Feature("pressure_depth_ratio_log", "pressure", None, "ln(bid depth / ask depth) over 10 levels"),
        Feature("microprice_mid_bps", "pressure", None,
                "(microprice - mid) / mid in bps; microprice = (bid*a0 + ask*b0)/(a0 + b0)"),
    ]


def _price() -> list[Feature]:
    out = [Feature(f"ret_{w}", "price", w, f"log return of the mid over the last {w}") for w in RETURN_WINDOWS]
    out += [Feature(f"rv_{w}", "price", w, f"realised volatility: sqrt of summed squared mid log returns over {w}")
            for w in VOL_WINDOWS]
    out += [
        Feature("momentum_zscore_15m", "price", "1h",
                "ret_15m / (rv_1h * sqrt(15/60)): 15-minute move in hourly-vol units"),
        Feature("dist_high_1h_bps", "price", "1h", "(mid - highest mid of the last hour) / mid in bps (<= 0)"),
        Feature("dist_low_1h_bps", "price", "1h", "(mid - lowest mid of the last hour) / mid in bps (>= 0)"),
    ]
    return out


def _volume() -> list[Feature]:
    return [
        Feature("volume_1m", "volume", "1m", "traded base volume over the last minute"),
        Feature("volume_5m", "volume", "5m", "traded base volume over the last 5 minutes"),
        Feature("volume_15m", "volume", "15m", "traded base volume over the last 15 minutes"),
        Feature("volume_ratio_1m_15m", "volume", "15m", "volume rate of the last minute / rate of the last 15"),
        Feature("trade_imbalance_1m", "volume", "1m", "(buy - sell) / (buy + sell) aggressor volume, last minute"),
        Feature("trade_imbalance_5m", "volume", "5m", "(buy - sell) / (buy + sell) aggressor volume, last 5 minutes"),
        Feature("vwap_dist_5m_bps", "volume", "5m", "(mid - VWAP of the last 5 minutes) / mid in bps"),
        Feature("vwap_dist_15m_bps", "volume", "15m", "(mid - VWAP of the last 15 minutes) / mid in bps"),
        Feature("obv_1h", "volume", "1h",
                "on-balance volume over the last hour: grid-step volume signed by the mid's move"),
    ]


# -- families added below this line keep their declarations in one function each --


def _stability() -> list[Feature]:
    return [
        # Not the quote's age: a liquid book on a fine tick moves its best quote between any two
        # 1-s snapshots, so the age is 0 at nearly every decision time (issue 15). The direction
        # of those moves is what the snapshots do resolve.
        Feature("best_bid_drift_5m", "stability", "5m",
                "net direction of the best bid's moves over 5 minutes: (rises - falls) / snapshots, in [-1, 1]"),
        Feature("best_ask_drift_5m", "stability", "5m",
                "net direction of the best ask's moves over 5 minutes: (rises - falls) / snapshots, in [-1, 1]"),
        Feature("spread_bps", "stability", None, "quoted spread 1e4 * (ask0 - bid0) / mid at t"),
        Feature("spread_bps_mean_5m", "stability", "5m", "mean of the per-snapshot spread_bps over 5 minutes"),
        Feature("spread_bps_std_5m", "stability", "5m", "std (ddof 0) of the per-snapshot spread_bps over 5 minutes"),
        Feature("spread_bps_std_1h", "stability", "1h", "std (ddof 0) of the per-snapshot spread_bps over 1 hour"),
        Feature("spread_zscore_5m", "stability", "5m",
                "(spread_bps - its 5m mean) / its 5m std; 0 if the spread did not vary"),
        Feature("spread_zscore_1h", "stability", "1h",
                "(spread_bps - its 1h mean) / its 1h std; 0 if the spread did not vary"),
        Feature("best_changes_1m", "stability", "1m",
                "snapshots in the last minute whose best bid or best ask price differs from the previous one"),
        Feature("best_changes_5m", "stability", "5m",
                "snapshots in the last 5 minutes whose best bid or best ask price differs from the previous one"),
        Feature("depth5_std_1m", "stability", "1m",
                "std (ddof 0) over 1 minute of per-snapshot top-5 depth (bid + ask sizes, levels 0-4), base units"),
        Feature("depth5_std_5m", "stability", "5m",
                "std (ddof 0) over 5 minutes of per-snapshot top-5 depth (bid + ask sizes, levels 0-4), base units"),
        Feature("depth5_replenish_ratio_5m", "stability", "5m",
                "top-5 depth at t / its 5m mean: < 1 depleted, back to ~1 once replenished"),
        Feature("spread_shock_age_s", "stability", "15m",
                "seconds since the last spread shock (spread > 2x its mean over the 5m before), capped at 600"),
        Feature("depth5_shock_age_s", "stability", "15m",
                "seconds since the last depth shock (top-5 depth < 1/2 its mean over the 5m before), capped at 600"),
    ]


def _cross_asset() -> list[Feature]:
    ref = "the reference (BTCUSDT; for BTCUSDT itself the equal-weighted mean of the other symbols)"
    return [
        Feature("xa_ref_ret_1m", "cross_asset", "1m", f"mid log return of {ref} over the last minute"),
        Feature("xa_ref_ret_1m_prev", "cross_asset", "2m",
                "the reference's mid log return over the minute before that"),
        Feature("xa_ref_ret_5m", "cross_asset", "5m", "the reference's mid log return over the last 5 minutes"),
        Feature("xa_ref_ofi_norm_1m", "cross_asset", "1m", "the reference's ofi_norm_1m"),
        Feature("xa_corr_1h", "cross_asset", "1h",
                "Pearson correlation of 10-second mid log returns with the reference's, last 360 bars"),
        Feature("xa_beta_1h", "cross_asset", "1h",
                "OLS beta of 10-second mid log returns on the reference's, last 360 bars"),
        Feature("xa_resid_ret_1m", "cross_asset", "1h",
                "ret_1m - xa_beta_1h * xa_ref_ret_1m: the move the reference does not explain"),
    ]


def cross_asset_peers(symbol: str, universe: Sequence[str], reference: str = REFERENCE_SYMBOL) -> list[str]:
    """The symbols whose books form ``symbol``'s cross-asset reference: the reference symbol for
    every other symbol, all the others for the reference itself ([] in a one-symbol universe)."""
    if reference not in universe:
        raise ValueError(f"cross-asset features need the reference symbol {reference} among the symbols "
                         f"{list(universe)}")
    if symbol == reference:
        return [s for s in universe if s != reference]
    return [reference]


CORE_COLUMNS = ("ofi_norm_1m", "pressure_imbalance_5", "ret_1m", "spread_bps")
LAGS = (1, 2, 5)


def _lags() -> list[Feature]:
    return [Feature(f"{c}_lag{k}", "lags", None, f"{c} {k} decision step{'s' if k > 1 else ''} earlier",
                    derived_from=c, lag_steps=k) for c in CORE_COLUMNS for k in LAGS]


def _rolling() -> list[Feature]:
    out = []
    for c in CORE_COLUMNS:
        out += [
            Feature(f"{c}_step_mean_1h", "rolling", "1h", f"mean of {c} over the decision steps of the last hour",
                    derived_from=c),
            Feature(f"{c}_step_std_1h", "rolling", "1h", f"sample std (ddof 1) of {c} over the last hour's steps",
                    derived_from=c),
            Feature(f"{c}_step_zscore_1h", "rolling", "1h", f"({c} - {c}_step_mean_1h) / {c}_step_std_1h",
                    derived_from=c),
        ]
    return out


def _time() -> list[Feature]:
    return [
        Feature("hour_of_day", "time", None, "UTC hour of the decision time, 0-23"),
        Feature("day_of_week", "time", None, description="ISO day of week, 1 = Monday"),
        Feature("hour_sin", "time", None, "sin(2 pi (hour + minute/60) / 24)"),
        Feature("hour_cos", "time", None, "cos(2 pi (hour + minute/60) / 24)"),
        Feature("dow_sin", "time", None, description="sin(2 pi (dow - 1) / 7)"),
        Feature("dow_cos", "time", None, description="cos(2 pi (dow - 1) / 7)"),
    ]


FEATURES: tuple[Feature, ...] = tuple(
    _ofi() + _pressure() + _price() + _volume() + _stability() + _cross_asset() + _time() + _lags() + _rolling())
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
if len(BY_NAME) != len(FEATURES):
    raise ValueError(f"feature names repeated: {sorted(n for n in BY_NAME if sum(f.name == n for f in FEATURES) > 1)}")
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(f.family for f in FEATURES))
DERIVED_FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(f.family for f in FEATURES if f.derived_from))
BASE_FAMILIES: tuple[str, ...] = tuple(f for f in FAMILIES if f not in DERIVED_FAMILIES)


def feature_columns(family: str | None = None) -> list[str]:
    return [f.name for f in FEATURES if family is None or f.family == family]


def max_lookback_s() -> int:
    """The longest window a base feature reads."""
    return max(f.lookback_s for f in FEATURES if f.derived_from is None)


def longest_lookback_s(step_s: int) -> int:
    """The furthest back any feature reads at decision step ``step_s`` (derived ones included)."""
    return max(f.lookback(step_s) for f in FEATURES)


def derived_span_s(step_s: int) -> int:
    """How far before the day the decision grid must start for the derived families."""
    return max((f.lag_steps * step_s + f.lookback_s for f in FEATURES if f.derived_from), default=0)
