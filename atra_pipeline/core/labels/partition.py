"""Label one date x symbol partition: read its features and mid path from DuckDB, apply
:mod:`atra_pipeline.core.labels.methods`, return the rows of table ``labels`` and what happened.

Pipeline: the mid as of each decision time -> barrier width (per-step EWM volatility scaled to the
holding period) -> CUSUM events at decision times of the day -> the primary model's side from the
features (order-flow momentum) -> meta-labels on the full snapshot path, which runs into the next day
up to the vertical barrier -> uniqueness and sample weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.features.build import ensure_features_table
from atra_pipeline.core.features.registry import CORE_COLUMNS
from atra_pipeline.core.labels.methods import (
    asof,
    average_uniqueness,
    cusum_events,
    daily_volatility,
    meta_labels,
    sample_weights,
)
from atra_pipeline.core.storage.database import PartitionWindow
from atra_pipeline.core.storage.sql import bind, load_sql

LABEL_COLUMNS = ["ts", "symbol", "side", "t1", "ret", "label", "outcome", "barrier", "target", "uniqueness", "weight"]


@dataclass(frozen=True)
class LabelSettings:
    """How events are chosen and labelled (the ``labels`` asset's config)."""

    pt_sl: tuple[float, float] = (1.0, 1.0)
    """Take-profit and stop-loss in units of the target; 0 disables one."""
    max_holding_s: int = 300
    """Vertical barrier, seconds after the event."""
    vol_span: int = 100
    """EWM span, in decision steps, of the per-step volatility."""
    cusum_k: float = 0.5
    """CUSUM threshold in units of the target."""
    primary_signal: str = "pressure_imbalance_5"
    """The primary model's signal, a core feature (registry.CORE_COLUMNS, which have hourly z-scores)."""
    z_threshold: float = 0.5
    """The primary model bets where |the signal's z-score over the last hour| exceeds this."""
    primary_on_zscore: bool = True
    """Gate the primary model on the signal's hourly z-score (True) or on the signal itself (False:
    for captures shorter than the z-score's hour, where the z-score is still warming up)."""
    min_return: float = 0.0
    """Events whose target is at most this are left out."""
    decay: float = 1.0
    """Time decay of the sample weights: the oldest event's factor, in (0, 1]."""
    balanced: bool = False
    """Scale the weights so both meta-label classes weigh the same."""
    warmup_s: int = 6 * 3600
    """Path read before the day (previous partition) for the volatility and the CUSUM state."""

    @property
    def gate_column(self) -> str:
        """The column the primary model's threshold applies to."""
        return f"{self.primary_signal}_step_zscore_1h" if self.primary_on_zscore else self.primary_signal


def label_partition(conn: duckdb.DuckDBPyConnection, window: PartitionWindow,
                    settings: LabelSettings = LabelSettings()) -> tuple[pd.DataFrame, dict]:
    """The ``labels`` rows of ``window`` (columns :data:`LABEL_COLUMNS`) and a report of counts."""
    features = _features(conn, window, settings.primary_signal)
    step = features.index.to_series().diff().min() if len(features) > 1 else pd.Timedelta(minutes=1)
    hold = pd.Timedelta(seconds=settings.max_holding_s)
    path = mid_path(conn, window, window.start - pd.Timedelta(seconds=settings.warmup_s), window.end + hold)
    if path.empty or path.index[0] >= window.end:
        raise DataError(f"raw_l2_snapshots {window.start.date()}|{window.symbol}", "no book snapshots: no price path")

    grid_close, target, cusum = event_filter(path, step, window.end, settings)
    events = cusum[(cusum >= window.start) & (cusum < window.end)].intersection(features.index)
    path_end = path.index[-1]  # the path is known up to its last snapshot
    labels = meta_labels(path, features, events, target, settings.pt_sl, hold, threshold=settings.z_threshold,
                         min_return=settings.min_return, path_end=path_end, signal=settings.primary_signal,
                         zscore=settings.gate_column)
    counts = dict(labels.attrs)
    labels["target"] = target.reindex(labels.index, method="ffill")
    labels["uniqueness"] = average_uniqueness(labels["t1"], path.index)
    labels["weight"] = sample_weights(labels, path, decay=settings.decay, balanced=settings.balanced)
    frame = labels.rename_axis("ts").reset_index().assign(symbol=window.symbol)[LABEL_COLUMNS]
    shares = frame["label"].value_counts(normalize=True).reindex([0, 1], fill_value=0.0)
    report = {
        "decision_times": len(features),
        "step_s": int(step.total_seconds()),
        "cusum_events": len(events),
        "labelled": len(frame),
        **{f"left_out_{k}": v for k, v in counts.items()},
        "share_label_1": round(float(shares[1]), 4),
        "share_label_0": round(float(shares[0]), 4),
        "barriers": frame["barrier"].value_counts().to_dict(),
        "path_end": str(path_end),
        "settings": asdict(settings),
    }
    return frame, report


def barrier_target(path: pd.Series, step: pd.Timedelta, end: pd.Timestamp,
                   settings: LabelSettings) -> tuple[pd.Series, pd.Series]:
    """The mid as of each decision time before ``end`` and the barrier width there: the EWM
    volatility (``vol_span`` steps) of one-step log returns, scaled to the holding period by
    sqrt(holding / step). The live path sizes its proposals with the same width."""
    grid = pd.date_range(path.index[0].ceil(step), end, freq=step, inclusive="left")
    grid = grid[grid >= path.index[0]]  # no price before the path's first snapshot
    grid_close = pd.Series(asof(path, grid), index=grid)
    hold = pd.Timedelta(seconds=settings.max_holding_s)
    return grid_close, daily_volatility(grid_close, span=settings.vol_span, lookback=step) * np.sqrt(hold / step)


def event_filter(path: pd.Series, step: pd.Timedelta, end: pd.Timestamp,
                 settings: LabelSettings) -> tuple[pd.Series, pd.Series, pd.DatetimeIndex]:
    """The event filter the labels and the strategy share: the grid mids and barrier widths of
    :func:`barrier_target` before ``end``, and the decision times where the symmetric CUSUM on the
    grid mids fires at ``cusum_k`` times the width. Every step is causal, so the live path, which
    runs it on the path up to a decision time from the same start (the day's start minus
    ``warmup_s``), finds the same events as the labels did on the whole day."""
    grid_close, target = barrier_target(path, step, end, settings)
    return grid_close, target, cusum_events(grid_close, settings.cusum_k * target)


def _features(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, signal: str) -> pd.DataFrame:
    if signal not in CORE_COLUMNS:
        raise ValueError(f"primary_signal={signal!r}: one of the core features {CORE_COLUMNS} (they have z-scores)")
    ensure_features_table(conn)  # a database where features never ran has no table yet
    sql = load_sql("labels/primary_features.sql").format(signal=signal)
    frame = conn.execute(sql, bind(sql, window.params)).fetchdf().set_index("ts")
    if frame.empty:
        raise DataError(f"features {window.start.date()}|{window.symbol}",
                        "no feature rows: materialize features for this partition first")
    return frame


def mid_path(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, start: pd.Timestamp,
              end: pd.Timestamp) -> pd.Series:
    """Mids over [start, end], so a vertical barrier at exactly ``end`` has its price."""
    sql = load_sql("labels/mid_path.sql")
    params = {"symbol": window.symbol, "path_start": start.to_pydatetime(),
              "path_end": (end + pd.Timedelta(microseconds=1)).to_pydatetime()}
    frame = conn.execute(sql, bind(sql, params)).fetchdf()
    return frame.set_index("ts")["mid"]
