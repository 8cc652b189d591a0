"""A small registered model for tests and benchmarks of the live path, which need one in the registry."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.models.registry import ModelRecord, decide, load_model, register_candidate
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.models.training import TrainingSet, TrainingSettings, model_features, train_candidate

DEFAULT_UNIVERSE = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def register_random_model(conn: duckdb.DuckDBPyConnection, win_rate: float = 0.6, approve: bool = True,
                          rows: int = 300, seed: int = 0, spec: ModelSpec | None = None) -> ModelRecord:
    """A LightGBM model on random values of the registry's columns plus ``side``, trained on labels
    that are 1 with probability ``win_rate`` (high: a confident model, whose bets get sized), in
    the registry with ``spec`` (default: the default settings over BTCUSDT, ETHUSDT, SOLUSDT) and,
    with ``approve``, the approved one."""
    rng = np.random.default_rng(seed)
    columns = model_features()
    index = pd.date_range("2024-07-01", periods=rows, freq="1min")
    X = pd.DataFrame(rng.normal(size=(rows, len(columns))), index=index, columns=columns)
    data = TrainingSet(X, (rng.random(rows) < win_rate).astype(int), np.ones(rows),
                       pd.Series(index + pd.Timedelta(minutes=5), index=index), np.zeros(rows),
                       np.array(["BTCUSDT"] * rows))
    # half the rows to tune on in 3 folds: a few dozen rows still train
    settings = TrainingSettings(trials=1, max_estimators=20, n_splits=3, tuning_fraction=0.5)
    model_id = register_candidate(conn, train_candidate(data, settings), settings, "2024-07-01", "2024-07-01", [],
                                  spec or ModelSpec(DEFAULT_UNIVERSE))
    if approve:
        decide(conn, model_id, True, "registered for a test or benchmark")
    return load_model(conn, model_id)
