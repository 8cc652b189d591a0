"""The live path's model step: at a decision time, what the approved model sees in each symbol of
its universe, computed exactly as research computed it.

* the event filter on the mid path (:func:`atra_pipeline.core.labels.partition.event_filter`, from the
  day's start minus the labels' warm-up, as the labels ran it), which gives the barrier width;
* at an event, the feature row from the research SQL itself
  (:func:`atra_pipeline.core.features.build.build_features`, cut off at the decision time, with the
  model's own decision step and cross-asset peers), the primary model's side and the meta-model's
  probability.

Everything comes from the model's registered spec: no environment variable or default changes
it. The data are the stored raw partitions plus the collected rows not yet in them: for the
duration of :func:`live_view`, temporary views named ``raw_l2_snapshots`` / ``raw_trades``
shadow the tables with that union. What the strategy does with the signals is
:mod:`atra_pipeline.core.execution.executor`.
"""

from __future__ import annotations

from contextlib import contextmanager

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.features.build import FEATURES_STAGE, build_features
from atra_pipeline.core.labels.methods import flow_momentum_side
from atra_pipeline.core.labels.partition import event_filter, mid_path
from atra_pipeline.core.models.registry import ModelRecord
from atra_pipeline.core.models.spec import SpecError
from atra_pipeline.core.storage.database import PartitionWindow
from atra_pipeline.core.storage.sql import load_sql, run_script

SIGNAL_COLUMNS = ["decision_ts", "symbol", "model_id", "event", "side", "probability", "barrier_width", "mid",
                  "data_ts", "created_at"]


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
    """The newest decision time every symbol has collected data up to, and a book at or before
    (None before that)."""
    rows = {s: (first, last) for s, first, last in conn.execute(
        "SELECT symbol, min(ts), max(ts) FROM collected_l2_snapshots WHERE list_contains($s, symbol) GROUP BY symbol",
        {"s": list(symbols)}).fetchall()}
    if set(rows) != set(symbols):
        return None
    decision = pd.Timestamp(min(last for _, last in rows.values())).floor(f"{step_s}s")
    return decision if decision >= max(pd.Timestamp(first) for first, _ in rows.values()) else None


def _refuse(conn, message: str, symbol: str | None, now) -> None:
    from atra_pipeline.core.execution.rails import risk_event

    risk_event(conn, "model_settings", message, symbol, now)
    raise SpecError(message)


def score(conn: duckdb.DuckDBPyConnection, decision_ts: pd.Timestamp, model: ModelRecord,
          symbols: list[str] | None = None, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """One signal row per symbol (default: the model's universe) for ``decision_ts`` (columns
    :data:`SIGNAL_COLUMNS`). A model whose settings cannot be honoured (no spec, a symbol outside
    its universe, a symbol or cross-asset peer without a book up to the decision) is refused with
    a :class:`SpecError` naming what is missing, and a ``model_settings`` risk event."""
    created = now or pd.Timestamp.now(tz="UTC").tz_localize(None)
    decision_ts = pd.Timestamp(decision_ts)
    try:
        spec = model.require_spec()
    except SpecError as error:
        _refuse(conn, str(error), None, created)
    symbols = list(symbols or spec.symbols)
    if outside := [s for s in symbols if s not in spec.symbols]:
        _refuse(conn, f"model {model.model_id}: symbols {outside} are not in its universe {list(spec.symbols)}", None,
                created)
    if (decision_ts - decision_ts.normalize()) % pd.Timedelta(seconds=spec.step_s):
        raise ValueError(f"{decision_ts} is not a decision time of model {model.model_id} (step {spec.step_s} s)")
    booster = None
    labels, step = spec.labels, pd.Timedelta(seconds=spec.step_s)
    rows = []
    with live_view(conn):
        _require_books(conn, model.model_id, sorted({*symbols, *(p for s in symbols for p in spec.peers(s))}),
                       decision_ts, created)
        for symbol in symbols:
            window = PartitionWindow.for_day(symbol, decision_ts.normalize())
            path = mid_path(conn, window, window.start - pd.Timedelta(seconds=labels.warmup_s), decision_ts)
            _, width, events = event_filter(path, step, decision_ts + step, labels)
            tau = float(width.iloc[-1]) if len(width) and width.index[-1] == decision_ts else float("nan")
            event = bool(decision_ts in events)
            side, probability = 0, None
            if event and np.isfinite(tau) and tau > labels.min_return:
                build_features(conn, window, spec.step_s, cutoff=decision_ts, peers=spec.peers(symbol),
                               decisions_from=decision_ts)
                feats = conn.execute(f"SELECT * FROM {FEATURES_STAGE} WHERE ts = $t",
                                     {"t": decision_ts.to_pydatetime()}).fetchdf().set_index("ts")
                side = int(flow_momentum_side(feats, labels.z_threshold, labels.primary_signal,
                                              labels.gate_column).iloc[0]) if len(feats) else 0
                if side != 0:
                    booster = booster or model.booster()
                    probability = float(booster.predict(feats.assign(side=float(side))[model.features])[0])
            rows.append({"decision_ts": decision_ts, "symbol": symbol, "model_id": model.model_id, "event": event,
                         "side": side, "probability": probability, "barrier_width": tau,
                         "mid": float(path.iloc[-1]), "data_ts": path.index[-1], "created_at": created})
    return pd.DataFrame(rows, columns=SIGNAL_COLUMNS)


def _require_books(conn, model_id: str, symbols: list[str], decision_ts: pd.Timestamp, now) -> None:
    """Every symbol the decision reads has a snapshot on the decision's day up to it."""
    have = {r[0] for r in conn.execute(
        "SELECT DISTINCT symbol FROM raw_l2_snapshots WHERE list_contains($s, symbol) AND ts >= $start AND ts <= $t",
        {"s": symbols, "start": decision_ts.normalize().to_pydatetime(), "t": decision_ts.to_pydatetime()}).fetchall()}
    if missing := [s for s in symbols if s not in have]:
        _refuse(conn, f"model {model_id}: no book of {missing} on {decision_ts.date()} up to {decision_ts} (its "
                      f"features read {symbols}): collect or store them", missing[0], now)


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
