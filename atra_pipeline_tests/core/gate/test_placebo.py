"""Placebo studies: labels permuted only within their blocks, too few events refused with the
figures, and cached per data and configuration so a re-run trains nothing."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.gate.placebo import block_permuted, ensure_placebos, placebo_keys
from atra_pipeline.core.models.training import TrainingSettings, roc_auc
from atra_pipeline_tests.core.models.test_model import synthetic_events


def test_labels_move_only_within_their_symbol_and_block():
    ts = pd.DatetimeIndex(np.repeat(pd.date_range("2024-08-01", periods=6, freq="20min"), 2))
    symbol = np.array(["A", "B"] * 6)
    y = np.arange(12)
    out = block_permuted(y, ts, symbol, 3600, np.random.default_rng(0))
    assert sorted(out) == list(range(12)) and not np.array_equal(out, y)
    blocks = pd.DataFrame({"symbol": symbol, "hour": ts.floor("h"), "before": y, "after": out})
    for _, group in blocks.groupby(["symbol", "hour"]):  # the same labels in each (symbol, hour)
        assert sorted(group["before"]) == sorted(group["after"])
    with pytest.raises(ValueError, match="12 events in 12 blocks of 60 s: fewer than 2 per block"):
        block_permuted(y, ts, symbol, 60, np.random.default_rng(0))


def test_placebos_are_cached_per_data_and_configuration(conn):
    data = synthetic_events(n=1200, signal=0.5, seed=8)
    settings = TrainingSettings(trials=2, max_estimators=40, placebos=2)
    keys, trained, error = ensure_placebos(lambda: nullcontext(conn), data, settings, 300)
    assert (len(keys), trained, error) == (2, 2, "")
    stored = conn.execute("SELECT cache_key, count(*) FROM placebo_predictions GROUP BY ALL ORDER BY ALL").fetchall()
    walked = (data.X.index >= data.X.index[0] + (data.X.index[-1] - data.X.index[0]) * 0.25).sum()
    assert [k for k, _ in stored] == sorted(keys) and all(0 < n <= walked for _, n in stored)
    again = ensure_placebos(lambda: nullcontext(conn), data, settings, 300)
    assert again == (keys, 0, "")  # nothing trained again
    assert conn.execute("SELECT count(*) FROM placebo_predictions").fetchall()[0][0] == sum(n for _, n in stored)
    # another configuration, other data: other placebos
    assert set(placebo_keys(data, replace(settings, trials=3), 300)).isdisjoint(keys)
    changed = data.subset(np.arange(len(data.y)))
    changed.y = 1 - changed.y
    assert set(placebo_keys(changed, settings, 300)).isdisjoint(keys)
    # the placebos' walk-forward predictions know nothing of the planted signal
    p = conn.execute("SELECT ts, probability FROM placebo_predictions WHERE cache_key = ?", [keys[0]]).fetchdf()
    y = pd.Series(data.y, index=data.X.index).loc[p["ts"]].to_numpy()
    assert abs(roc_auc(y, p["probability"].to_numpy()) - 0.5) < 0.1
