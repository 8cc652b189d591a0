"""Walk-forward predictions: what a trader retraining the model on schedule would have had.

The events' span is cut in two. The earliest ``tuning_fraction`` is where the Optuna study
chooses the hyperparameters under purged CV; they are then fixed. From there on, time is cut into
periods of ``retrain_every_s``; each period's events are predicted by a model fitted with those
hyperparameters on the events before the period only (an expanding window from the first event,
or a rolling one of ``rolling_window_s``), whose labels ended before the period started (purged by
label span) and which started at least the longest feature look-back before it (embargo: their
features must not read the period's data). Every walk-forward prediction is therefore out of
sample in time, and no choice was made on the data it predicts: the backtest, the risk report
and the gate read these.

Why fixed hyperparameters and not a study per period (nested): a study per period multiplies the
research cost by the number of periods, and the hyperparameters' selection bias is then
measured anyway, by the Deflated Sharpe Ratio over the study's trials and the placebo studies.
Fixing them before the first period keeps every walk-forward period free of any choice.

Reference: Lopez de Prado, *Advances in Financial Machine Learning* (2018), ch. 7 and 12.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from atra_pipeline.core.models.cv import walk_forward_splits


@dataclass(frozen=True)
class WalkForwardPlan:
    """Where the study tunes and which events each walk-forward period trains on and predicts."""

    tuning: np.ndarray
    """Positions of the events the study tunes on (before the first period, purged and embargoed)."""
    periods: list[tuple[np.ndarray, np.ndarray]]
    """``(train, test)`` positions of each period, in time order."""
    first_test: pd.Timestamp
    period: pd.Timedelta
    embargo: pd.Timedelta


def plan_walk_forward(index: pd.DatetimeIndex, t1: pd.Series, retrain_every: pd.Timedelta, tuning_fraction: float,
                      embargo: pd.Timedelta, min_periods: int = 3, rolling: pd.Timedelta | None = None
                      ) -> WalkForwardPlan:
    """The walk-forward plan over events at ``index`` with label ends ``t1``.

    The period is ``retrain_every``, shortened to fit ``min_periods`` periods after the tuning
    window when the data are too short for them (a one-day study retrains every 6 hours), and
    periods start on multiples of it (UTC midnight for daily retraining). Raises ``ValueError``
    when there is nothing to tune on or nothing to predict, naming what is missing.
    """
    if not 0 < tuning_fraction < 1:
        raise ValueError(f"tuning_fraction={tuning_fraction}: the share of the span to tune on, in (0, 1)")
    if len(index) < 2:
        raise ValueError(f"{len(index)} events: too few to walk forward")
    span = index[-1] - index[0]
    remaining, period = span * (1 - tuning_fraction), pd.Timedelta(retrain_every)
    if math.ceil(remaining / period) < min_periods:  # a last, shorter period counts: 2.9999 days make 3 days
        period = remaining / min_periods
    # whole seconds, so periods line up with the clock
    period = max(pd.Timedelta(seconds=1), pd.Timedelta(seconds=int(period.total_seconds())))
    first_test = (index[0] + span * tuning_fraction).ceil(period)
    t0 = index.as_unit("ns").asi8
    end = pd.DatetimeIndex(t1.to_numpy()).as_unit("ns").asi8
    tuning = np.flatnonzero((t0 < (first_test - embargo).value) & (end < first_test.value))
    periods = list(walk_forward_splits(index, rolling, period, None, t1, embargo, first_test=first_test))
    if not len(tuning):
        raise ValueError(f"no event to tune on before {first_test} (embargo {embargo}): the data are too short")
    if not periods:
        raise ValueError(f"no walk-forward period from {first_test} on: nothing to predict")
    return WalkForwardPlan(tuning, periods, first_test, period, embargo)


def walk_forward_predict(X: pd.DataFrame, y: np.ndarray, weight: np.ndarray, plan: WalkForwardPlan, params: dict,
                         rounds: int) -> tuple[np.ndarray, list[dict]]:
    """Each period's events predicted by a model fitted on that period's training events with the
    fixed ``params`` and ``rounds`` boosting rounds: the probabilities (NaN outside the periods;
    a column per class for a multiclass model) and one row per period."""
    n_classes = int(params.get("num_class", 1))
    scores = np.full((len(y), n_classes) if n_classes > 1 else len(y), np.nan)
    threads = int(params.get("num_threads", 1))
    workers = max(1, min(len(plan.periods), threads // 2))  # periods side by side where cores are to spare
    each = {**params, "num_threads": max(1, threads // workers)}

    def fit(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        booster = lgb.train(each, lgb.Dataset(X.iloc[train], y[train], weight=weight[train], params={"verbose": -1}),
                            num_boost_round=rounds)
        return booster.predict(X.iloc[test])

    with ThreadPoolExecutor(max_workers=workers) as pool:  # LightGBM releases the GIL while it trains
        predictions = list(pool.map(lambda period: fit(*period), plan.periods))
    rows = []
    for k, ((train, test), p) in enumerate(zip(plan.periods, predictions)):
        scores[test] = p
        rows.append({"period": k, "train_events": len(train), "test_events": len(test),
                     "train_end": str(X.index[train].max()), "test_start": str(X.index[test[0]]),
                     "test_end": str(X.index[test[-1]])})
    return scores, rows
