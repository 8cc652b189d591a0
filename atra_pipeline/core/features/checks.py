"""Checks on a partition's feature rows; each names the columns (and times) at fault.

The rules: no infinite value; per column, the NaN share outside the warm-up at most
``max_nan_share``; no market-data column constant where it is defined; the decision grid
complete; and no look-ahead on sampled decision times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from atra_pipeline.core.features.registry import (
    CLOCK_FAMILIES,
    DECISION_STEP_S,
    FEATURES,
    MAX_BOOK_AGE_S,
    MIN_ROWS_JUDGED_CONSTANT,
)


@dataclass(frozen=True)
class FeatureSettings:
    """How a partition's features are built and checked (the ``features`` asset's config)."""

    step_s: int = DECISION_STEP_S
    """Seconds between decision times; divides an hour (1, 2, 5, 10, 15, 30, 60 ...)."""
    max_nan_share: float = 0.05
    """Largest NaN share a column may have outside the warm-up."""
    lookahead_samples: int = 3
    """Decision times rebuilt from truncated raw data by the look-ahead check."""
    max_stale_share: float = 0.05
    """Largest share of decision rows whose book is stale (older than the bound: features NULL)."""


@dataclass
class FeatureCheckOutcome:
    """What one rule found: pass/fail, the columns at fault, supporting figures."""

    name: str
    passed: bool
    columns: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    @property
    def description(self) -> str:
        return FEATURE_CHECKS[self.name]

    def message(self) -> str:
        if self.passed:
            return f"{self.name}: passed"
        return f"{self.name}: failed for {', '.join(self.columns) or 'the partition'}"


FEATURE_CHECKS = {
    "no_infinite_values": "No feature value is +-inf.",
    "nan_share_within_limit": "Per column, NaN share outside the warm-up at most max_nan_share.",
    "no_constant_columns": "No market-data feature is constant over the rows where it is defined outside its "
                           f"warm-up (calendar columns are the clock's; a column with fewer than "
                           f"{MIN_ROWS_JUDGED_CONSTANT} such rows is not judged).",
    "decision_grid_complete": "One row per decision time, none missing or repeated.",
    "book_fresh": "Decision rows whose book is older than the staleness bound (their book features NULL) at most "
                  "max_stale_share of the day.",
    "no_lookahead": "Rows rebuilt from raw data truncated at sampled times equal the full build.",
}


def warmup_mask(frame: pd.DataFrame, data_start: pd.Timestamp | Mapping[str, pd.Timestamp | None] | None,
                step_s: int = DECISION_STEP_S) -> pd.DataFrame:
    """True where a feature's window reaches before the first data it reads (NaN by construction).

    ``data_start``: one time for every family, or per family (``build.data_start``); None = no data.
    """
    mask = pd.DataFrame(False, index=frame.index, columns=[f.name for f in FEATURES])
    for f in FEATURES:
        start = data_start.get(f.family) if isinstance(data_start, Mapping) else data_start
        mask[f.name] = True if start is None else frame["ts"] - pd.Timedelta(seconds=f.lookback(step_s)) < start
    return mask


def book_fresh_outcome(stale: pd.DatetimeIndex, rows: int,
                       max_stale_share: float = FeatureSettings.max_stale_share) -> FeatureCheckOutcome:
    """``book_fresh``: the decision rows with a stale book, against ``max_stale_share`` of ``rows``."""
    share = len(stale) / rows if rows else 0.0
    return FeatureCheckOutcome("book_fresh", share <= max_stale_share, figures={
        "stale_rows": len(stale), "stale_share": round(share, 6), "max_stale_share": max_stale_share,
        "max_book_age_s": MAX_BOOK_AGE_S, "first_stale": [str(t) for t in stale[:5]]})


def check_features(frame: pd.DataFrame, expected_times: pd.DatetimeIndex,
                   data_start: pd.Timestamp | Mapping[str, pd.Timestamp | None] | None,
                   max_nan_share: float = FeatureSettings.max_nan_share,
                   step_s: int = FeatureSettings.step_s) -> list[FeatureCheckOutcome]:
    """All rules but look-ahead (see :func:`lookahead_outcome`) on one partition's rows."""
    cols = [f.name for f in FEATURES]
    values = frame[cols].astype(float)
    infinite = [c for c in cols if np.isinf(values[c]).any()]
    warm = warmup_mask(frame, data_start, step_s)
    outside = ~warm
    nan_share = {c: float(values.loc[outside[c], c].isna().mean()) if outside[c].any() else 0.0 for c in cols}
    too_many_nans = [c for c in cols if nan_share[c] > max_nan_share]
    # judged: the market-data families, on the rows outside the warm-up where the value is defined
    judged = {f.name: values.loc[outside[f.name], f.name].dropna() for f in FEATURES if f.family not in CLOCK_FAMILIES}
    constant = [c for c, v in judged.items() if len(v) >= MIN_ROWS_JUDGED_CONSTANT and v.nunique() <= 1]
    too_few = sorted(c for c, v in judged.items() if len(v) < MIN_ROWS_JUDGED_CONSTANT)
    times = pd.DatetimeIndex(frame["ts"])
    missing = expected_times.difference(times)
    repeated = times[times.duplicated()].unique()
    return [
        FeatureCheckOutcome("no_infinite_values", not infinite, columns=infinite),
        FeatureCheckOutcome("nan_share_within_limit", not too_many_nans,
                            columns=too_many_nans,
                            figures={"max_nan_share": max_nan_share,
                                     "warmup_nan_cells": int((warm & values.isna()).to_numpy().sum()),
                                     "worst_columns": {c: round(nan_share[c], 4) for c in
                                                       sorted(cols, key=nan_share.get, reverse=True)[:5]}}),
        FeatureCheckOutcome("no_constant_columns", not constant, columns=constant,
                            figures={"min_rows_judged": MIN_ROWS_JUDGED_CONSTANT,
                                     **({"not_judged_too_few_rows": too_few} if too_few else {})}),
        FeatureCheckOutcome("decision_grid_complete", len(missing) == 0 and len(repeated) == 0,
                            figures={"expected": len(expected_times), "rows": len(frame), "missing": len(missing),
                                     "first_missing": [str(t) for t in missing[:5]],
                                     "repeated": [str(t) for t in repeated[:5]]}),
    ]


def lookahead_outcome(mismatches: list[dict], times) -> FeatureCheckOutcome:
    columns = sorted({m["column"] for m in mismatches})
    return FeatureCheckOutcome("no_lookahead", not mismatches, columns=columns,
                               figures={"sampled_times": [str(pd.Timestamp(t)) for t in times],
                                        "mismatches": mismatches[:10]})
