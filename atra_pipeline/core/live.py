"""The live path: the feature row of the latest decision time, scored by the approved model.

Features come from the research SQL itself (:func:`atra_pipeline.core.features.build.build_features`),
run over the stored raw partitions plus the collected rows not yet in them: for the duration of
:func:`live_view`, temporary views named ``raw_l2_snapshots`` / ``raw_trades`` shadow the tables
with that union, and the build's ``cutoff`` is the decision time, so nothing after it is read.
"""

from __future__ import annotations

from contextlib import contextmanager

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.features.build import FEATURES_STAGE, build_features
from atra_pipeline.core.features.registry import DECISION_STEP_S, cross_asset_peers
from atra_pipeline.core.labelling import LabelSettings, barrier_target, mid_path
from atra_pipeline.core.labels import flow_momentum_side
from atra_pipeline.core.model_registry import ModelRecord
from atra_pipeline.core.sizing import SizingSettings, position_notional
from atra_pipeline.core.sql import load_sql, run_script
from atra_pipeline.core.storage import PartitionWindow

SIGNAL_COLUMNS = ["decision_ts", "symbol", "model_id", "probability", "side", "size_notional", "target", "data_ts",
                  "created_at"]


@contextmanager
def live_view(conn: duckdb.DuckDBPyConnection):
    """``raw_l2_snapshots`` and ``raw_trades`` as the stored rows plus the collected ones."""
    db = conn.execute("SELECT current_database()").fetchall()[0][0]
    run_script(conn, load_sql("live/live_views.sql").format(db=db), {})
    try:
        yield
    finally:
        conn.execute("DROP VIEW IF EXISTS temp.main.raw_l2_snapshots")
        conn.execute("DROP VIEW IF EXISTS temp.main.raw_trades")


def latest_decision_time(conn: duckdb.DuckDBPyConnection, symbols: list[str], step_s: int) -> pd.Timestamp | None:
    """The newest decision time every symbol has collected data up to (None before any data)."""
    rows = dict(conn.execute("SELECT symbol, max(ts) FROM collected_l2_snapshots WHERE list_contains($s, symbol) "
                             "GROUP BY symbol", {"s": list(symbols)}).fetchall())
    if set(rows) != set(symbols):
        return None
    return pd.Timestamp(min(rows.values())).floor(f"{step_s}s")


def score(conn: duckdb.DuckDBPyConnection, decision_ts: pd.Timestamp, symbols: list[str], model: ModelRecord,
          step_s: int = DECISION_STEP_S, labels: LabelSettings = LabelSettings(), sizing: SizingSettings = SizingSettings(),
          equity: float = 100_000.0, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """One signal row per symbol for ``decision_ts`` (columns :data:`SIGNAL_COLUMNS`)."""
    booster = model.booster()
    rows = []
    with live_view(conn):
        for symbol in symbols:
            window = PartitionWindow.for_day(symbol, decision_ts.normalize())
            build_features(conn, window, step_s, cutoff=decision_ts, peers=cross_asset_peers(symbol, symbols),
                           decisions_from=decision_ts)
            feats = conn.execute(f"SELECT * FROM {FEATURES_STAGE} WHERE ts = $t",
                                 {"t": decision_ts.to_pydatetime()}).fetchdf().set_index("ts")
            path = mid_path(conn, window, decision_ts - pd.Timedelta(seconds=labels.warmup_s), decision_ts)
            side = int(flow_momentum_side(feats, labels.z_threshold, labels.primary_signal).iloc[0]) if len(feats) else 0
            target = float("nan")
            if len(path) > 1:
                _, width = barrier_target(path, pd.Timedelta(seconds=step_s), decision_ts + pd.Timedelta(seconds=step_s),
                                          labels)
                target = float(width.iloc[-1]) if len(width) else float("nan")
            probability, size = None, 0.0
            if side != 0:
                X = feats.assign(side=float(side))[model.features]
                probability = float(booster.predict(X)[0])
                if np.isfinite(target):
                    size = position_notional(equity, probability, *labels.pt_sl, target, sizing)
            rows.append({"decision_ts": decision_ts, "symbol": symbol, "model_id": model.model_id,
                         "probability": probability, "side": side, "size_notional": size, "target": target,
                         "data_ts": path.index.max() if len(path) else decision_ts,
                         "created_at": now or pd.Timestamp.now(tz="UTC").tz_localize(None)})
    return pd.DataFrame(rows, columns=SIGNAL_COLUMNS)


def latest_signals(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The signal rows of the newest decision time (empty before any)."""
    return conn.execute("SELECT * FROM live_signals WHERE decision_ts = (SELECT max(decision_ts) FROM live_signals)"
                        ).fetchdf()


def write_signals(conn: duckdb.DuckDBPyConnection, signals: pd.DataFrame) -> int:
    """Insert the signals not stored yet (a retried run writes nothing twice); return how many."""
    conn.register("new_signals", signals[SIGNAL_COLUMNS])
    try:
        return conn.execute("INSERT INTO live_signals SELECT n.* FROM new_signals AS n ANTI JOIN live_signals AS s "
                            "USING (decision_ts, symbol, model_id)").fetchall()[0][0]
    finally:
        conn.unregister("new_signals")
