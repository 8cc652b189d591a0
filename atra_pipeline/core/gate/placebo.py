"""Placebo studies: the candidate's whole training run repeated on labels that carry no
information about their own events, to learn what the procedure finds in noise.

Each placebo permutes the meta-labels within contiguous blocks of ``block_s`` seconds of each
symbol: a block's share of winners (its regime) stays, the link between an event's features and
its own outcome is cut. The placebo then goes through :func:`~atra_pipeline.core.models.training.train_candidate`
exactly as the candidate did (same study, same walk-forward), and its walk-forward predictions
are backtested by the same strategy. A candidate whose net Sharpe ratio does not beat every
placebo's has shown nothing the procedure does not find without a signal (the gate's rule).

Placebo predictions are cached under a key of the data, the settings and the placebo's number,
so a re-run on the same data and configuration trains nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, replace

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.models.threads import lightgbm_threads
from atra_pipeline.core.models.training import TrainingSet, TrainingSettings, train_candidate
from atra_pipeline.core.storage.database import transaction

MIN_EVENTS_PER_BLOCK = 2


def block_permuted(y: np.ndarray, ts: pd.DatetimeIndex, symbol: np.ndarray, block_s: float,
                   rng: np.random.Generator) -> np.ndarray:
    """``y`` permuted within each (symbol, ``block_s``-second block of ``ts``). Raises
    ``ValueError`` when the blocks hold too few events to permute (fewer than
    :data:`MIN_EVENTS_PER_BLOCK` on average), naming the figures."""
    blocks = pd.DataFrame({"symbol": symbol, "block": ts.floor(pd.Timedelta(seconds=block_s))})
    groups = blocks.groupby(["symbol", "block"], sort=False).indices
    if len(y) < MIN_EVENTS_PER_BLOCK * len(groups):
        raise ValueError(f"{len(y)} events in {len(groups)} blocks of {block_s:g} s: fewer than "
                         f"{MIN_EVENTS_PER_BLOCK} per block to permute, so no placebo can be trained")
    out = np.asarray(y).copy()
    for positions in groups.values():
        out[positions] = out[rng.permutation(positions)]
    return out


def data_key(data: TrainingSet) -> str:
    """A digest of the events, their features, labels, weights and label spans."""
    h = hashlib.sha1()
    for part in (data.X.index.as_unit("ns").asi8, data.X.to_numpy(dtype=float), data.y, data.weight,
                 pd.DatetimeIndex(data.t1.to_numpy()).as_unit("ns").asi8, data.symbol.astype(str)):
        h.update(np.ascontiguousarray(part).tobytes())
    h.update(json.dumps(list(data.X.columns)).encode())
    return h.hexdigest()


def placebo_key(data_digest: str, settings: TrainingSettings, lookback_s: float, number: int) -> str:
    """The cache key of placebo ``number`` on data ``data_digest`` trained with ``settings``."""
    config = {k: v for k, v in asdict(settings).items() if k not in ("num_threads", "reuse_datasets", "placebos")}
    text = json.dumps({"data": data_digest, "settings": config, "lookback_s": lookback_s, "placebo": number},
                      sort_keys=True, default=str)
    return "placebo-" + hashlib.sha1(text.encode()).hexdigest()[:16]


def train_placebo(data: TrainingSet, settings: TrainingSettings, lookback_s: float, number: int) -> pd.DataFrame:
    """Placebo ``number``'s walk-forward predictions (``ts, symbol, probability``): labels permuted
    by block with a generator seeded by ``settings.seed`` and ``number``, then trained exactly
    like the candidate (the same settings, seed included)."""
    rng = np.random.default_rng([settings.seed, number])
    placebo = data.subset(np.arange(len(data.y)))
    placebo.y = block_permuted(data.y, data.X.index, data.symbol, settings.placebo_block_s, rng)
    result = train_candidate(placebo, settings, lookback_s=lookback_s)
    return result.oof[["ts", "symbol", "probability"]]


def placebo_keys(data: TrainingSet, settings: TrainingSettings, lookback_s: float) -> list[str]:
    """The cache keys of the ``settings.placebos`` placebos of ``data``."""
    digest = data_key(data)
    return [placebo_key(digest, settings, lookback_s, k) for k in range(settings.placebos)]


def run_placebos(data: TrainingSet, settings: TrainingSettings, lookback_s: float,
                 todo: dict[str, int]) -> dict[str, pd.DataFrame]:
    """The walk-forward predictions of the placebos ``todo`` (key: number); in parallel where the
    machine has cores to spare (LightGBM releases the GIL), each on its share of the threads."""
    if not todo:
        return {}
    threads = lightgbm_threads(settings.num_threads)
    workers = max(1, min(len(todo), threads // 2))
    each = replace(settings, num_threads=max(1, threads // workers))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(train_placebo, data, each, lookback_s, k) for key, k in todo.items()}
        return {key: future.result() for key, future in futures.items()}


def ensure_placebos(connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]], data: TrainingSet,
                    settings: TrainingSettings, lookback_s: float, study_trials: int = 0) -> tuple[list[str], int, str]:
    """Every placebo of ``data`` in table ``placebo_predictions``, training those not cached:
    ``(keys, trained now, why none could be trained)``; keys are empty when they cannot be
    (too few events per block), and the reason says so. Placebos search as many trials as the
    candidate's study holds (``study_trials``: a resumed study may hold more than ``settings.trials``).

    ``connect()`` opens the database: once to read the cache and once to write what was trained,
    never during training, so other writers are not locked out of the file for minutes."""
    settings = replace(settings, trials=max(settings.trials, study_trials))
    keys = placebo_keys(data, settings, lookback_s)
    with connect() as conn:
        cached = {row[0] for row in conn.execute("SELECT DISTINCT cache_key FROM placebo_predictions WHERE "
                                                 "list_contains(?, cache_key)", [keys]).fetchall()}
    todo = {key: k for k, key in enumerate(keys) if key not in cached}
    try:
        trained = run_placebos(data, settings, lookback_s, todo)
    except ValueError as error:
        return [], 0, str(error)
    if trained:
        with connect() as conn, transaction(conn):
            for key, predictions in trained.items():
                rows = predictions.assign(cache_key=key)  # noqa: F841 (read by name in the SQL below)
                # two runs training the same placebo at once write the same rows: the first stays
                conn.execute("INSERT OR IGNORE INTO placebo_predictions BY NAME SELECT * FROM rows")
    return keys, len(trained), ""
