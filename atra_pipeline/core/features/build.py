"""Build the feature rows of one partition in DuckDB: Python only orders the SQL families.

Inputs are the stored ``raw_l2_snapshots`` (and later ``raw_trades``) of the partition's symbol
from ``start - max look-back`` (the end of the previous day, when it is stored) to the end of
the day. A feature at decision time ``t`` reads snapshots with ``ts <= t`` only; where the
stored data do not reach back a whole window (the first stored day), it is NULL (warm-up).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from atra_pipeline.core.features.registry import (
    BASE_FAMILIES,
    DERIVED_FAMILIES,
    FEATURES,
    derived_span_s,
    feature_columns,
    max_lookback_s,
)
from atra_pipeline.core.sql import bind, load_sql, run_script
from atra_pipeline.core.storage import PartitionWindow

FEATURES_STAGE = "fx_features"
KEY_COLUMNS = ["ts", "symbol"]


def ensure_features_table(conn: duckdb.DuckDBPyConnection) -> None:
    """Create ``features`` from the registry, adding any registered column it lacks.

    The table's columns follow the registry rather than a migration file, so a new feature is
    a SQL change plus a registry line.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS features (ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL)")
    present = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'features'").fetchall()}
    for name in feature_columns():
        if name not in present:
            conn.execute(f"ALTER TABLE features ADD COLUMN {name} DOUBLE")


def build_features(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, step_s: int = 60,
                   cutoff: pd.Timestamp | None = None) -> str:
    """Compute ``window``'s feature rows into temp table ``fx_features``; return its name.

    One row per decision time ``start + k * step_s`` in ``[start, end)``, columns
    ``ts, symbol`` and the registry's features in registry order. ``cutoff`` ignores raw rows
    after it (the data as they stood then), for the look-ahead check.
    """
    if step_s <= 0 or 3600 % step_s:
        raise ValueError(f"step_s={step_s}: the decision step must divide an hour (1, 2, 5, 10, 15, 30, 60 s ...)")
    lookbacks = sorted({0, *(f.lookback_s for f in FEATURES if f.derived_from is None)})
    span = -(-derived_span_s(step_s) // step_s) * step_s  # whole steps
    grid_start = window.start - pd.Timedelta(seconds=span)
    cutoff = window.end if cutoff is None else pd.Timestamp(cutoff)
    params = {**window.params, "step_s": step_s, "lookbacks_s": lookbacks, "cutoff": cutoff.to_pydatetime(),
              "grid_start": grid_start.to_pydatetime(),
              "load_start": (grid_start - pd.Timedelta(seconds=max_lookback_s())).to_pydatetime()}
    run_script(conn, load_sql("features/prepare_book.sql"), params)
    run_script(conn, load_sql("features/prepare_trades.sql"), params)
    for family in BASE_FAMILIES:
        _run_family(conn, family, load_sql(f"features/{family}.sql"), params)
    base_cols = [c for fam in BASE_FAMILIES for c in feature_columns(fam)]
    conn.execute("CREATE OR REPLACE TEMP TABLE fx_base AS SELECT ts, " + ", ".join(base_cols) + " FROM fx_grid "
                 + " ".join(f"LEFT JOIN fx_{f} USING (ts)" for f in BASE_FAMILIES) + " ORDER BY ts")
    for family in DERIVED_FAMILIES:
        sql = load_sql(f"features/{family}.sql").format(rows_1h=3600 // step_s - 1)
        _run_family(conn, family, sql, params)
    joins = " ".join(f"LEFT JOIN fx_{f} USING (ts)" for f in DERIVED_FAMILIES)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {FEATURES_STAGE} AS SELECT ts, $symbol AS symbol, "
                 f"{', '.join(feature_columns())} FROM fx_base {joins} WHERE ts >= $start ORDER BY ts",
                 {"symbol": window.symbol, "start": window.start.to_pydatetime()})
    return FEATURES_STAGE


def _run_family(conn: duckdb.DuckDBPyConnection, family: str, sql: str, params: dict) -> None:
    conn.execute(f"CREATE OR REPLACE TEMP TABLE fx_{family} AS {sql}", bind(sql, params))
    got = [d[0] for d in conn.execute(f"SELECT * FROM fx_{family} LIMIT 0").description][1:]
    if got != feature_columns(family):
        raise ValueError(f"sql/features/{family}.sql returns {got}, the registry lists {feature_columns(family)}")


def data_start(conn: duckdb.DuckDBPyConnection) -> pd.Timestamp | None:
    """First snapshot the last build loaded: windows reaching before it are warm-up."""
    first = conn.execute("SELECT min(ts) FROM fx_book").fetchall()[0][0]
    return None if first is None else pd.Timestamp(first)


def lookahead_mismatches(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, times, step_s: int = 60,
                         atol: float = 1e-9) -> list[dict]:
    """Rebuild the features from raw data truncated at each ``t`` in ``times`` and compare the row
    at ``t`` with the full build. Returns one entry per differing (time, column); empty = no look-ahead.
    """
    build_features(conn, window, step_s)
    full = conn.execute(f"SELECT * FROM {FEATURES_STAGE}").fetchdf().set_index("ts")
    mismatches = []
    for t in times:
        t = pd.Timestamp(t)
        build_features(conn, window, step_s, cutoff=t)
        row = conn.execute(f"SELECT * FROM {FEATURES_STAGE} WHERE ts = $t", {"t": t.to_pydatetime()}).fetchdf()
        truncated, complete = row.iloc[0], full.loc[t]
        for col in feature_columns():
            a, b = complete[col], truncated[col]
            same = (pd.isna(a) and pd.isna(b)) or (not pd.isna(a) and not pd.isna(b) and abs(a - b) <= atol * max(1.0, abs(a)))
            if not same:
                mismatches.append({"ts": str(t), "column": col, "full": a, "truncated": b})
    build_features(conn, window, step_s)  # leave the full build staged
    return mismatches
