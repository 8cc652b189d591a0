"""Build the feature rows of one partition in DuckDB: Python only orders the SQL families.

Inputs are the stored ``raw_l2_snapshots`` and ``raw_trades`` of the partition's symbol, and the
books of its cross-asset ``peers`` (see ``registry.cross_asset_peers``), from ``start - max
look-back`` (the end of the previous day, when it is stored) to the end of the day. A feature at
decision time ``t`` reads snapshots with ``ts <= t`` only; where the stored data do not reach
back a whole window (the first stored day), it is NULL (warm-up).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from atra_pipeline.core.features.registry import (
    BASE_FAMILIES,
    CLOCK_FAMILIES,
    DECISION_STEP_S,
    DERIVED_FAMILIES,
    FAMILIES,
    FEATURES,
    MAX_BOOK_AGE_S,
    derived_span_s,
    feature_columns,
    max_lookback_s,
)
from atra_pipeline.core.storage.database import PartitionWindow
from atra_pipeline.core.storage.sql import bind, load_sql, run_script

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


def build_features(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, step_s: int = DECISION_STEP_S,
                   cutoff: pd.Timestamp | None = None, peers: Sequence[str] = (),
                   decisions_from: pd.Timestamp | None = None) -> str:
    """Compute ``window``'s feature rows into temp table ``fx_features``; return its name.

    One row per decision time ``start + k * step_s`` in ``[start, end)``, columns
    ``ts, symbol`` and the registry's features in registry order. ``cutoff`` ignores raw rows
    after it (the data as they stood then), for the look-ahead check. ``peers``: the symbols
    whose books form the cross-asset reference; none leaves the cross-asset columns NULL.
    ``decisions_from`` (a decision time of the window) computes only the rows from it on, loading
    only the data their windows read (the live path scores one decision time this way); the
    rows are the full build's. Decision times after ``cutoff`` are not computed.
    """
    if step_s <= 0 or 3600 % step_s:
        raise ValueError(f"step_s={step_s}: the decision step must divide an hour (1, 2, 5, 10, 15, 30, 60 s ...)")
    lookbacks = sorted({0, *(f.lookback_s for f in FEATURES if f.derived_from is None)})
    first = window.start if decisions_from is None else max(window.start, pd.Timestamp(decisions_from))
    if (first - window.start) % pd.Timedelta(seconds=step_s):
        raise ValueError(f"decisions_from={decisions_from} is not a decision time of step {step_s} s")
    grid_start = first - pd.Timedelta(seconds=_span(step_s))
    cutoff = window.end if cutoff is None else pd.Timestamp(cutoff)
    masked = {f.name: f.lookback(step_s) for f in FEATURES if f.family not in CLOCK_FAMILIES}
    params = {**window.params, "step_s": step_s, "peers": list(peers), "lookbacks_s": lookbacks,
              "cutoff": cutoff.to_pydatetime(), "max_book_age_s": MAX_BOOK_AGE_S,
              "mask_lookbacks_s": sorted(set(masked.values())),
              "grid_start": grid_start.to_pydatetime(),
              "load_start": (grid_start - pd.Timedelta(seconds=max_lookback_s())).to_pydatetime()}
    run_script(conn, load_sql("features/prepare_book.sql"), params)
    run_script(conn, load_sql("features/prepare_trades.sql"), params)
    run_script(conn, load_sql("features/staleness.sql"), params)
    for family in BASE_FAMILIES:
        _run_family(conn, family, load_sql(f"features/{family}.sql"), params)
    base_cols = [c for fam in BASE_FAMILIES for c in feature_columns(fam)]
    # the derived families read the base columns already NULL where their book was stale
    conn.execute("CREATE OR REPLACE TEMP TABLE fx_base AS SELECT ts, " + _masked(base_cols, masked) + " FROM fx_grid "
                 + " ".join(f"LEFT JOIN fx_{f} USING (ts)" for f in BASE_FAMILIES)
                 + f" {_stale_flags(masked)} ORDER BY ts")
    for family in DERIVED_FAMILIES:
        sql = load_sql(f"features/{family}.sql").format(rows_1h=3600 // step_s - 1)
        _run_family(conn, family, sql, params)
    joins = " ".join(f"LEFT JOIN fx_{f} USING (ts)" for f in DERIVED_FAMILIES)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {FEATURES_STAGE} AS SELECT ts, $symbol AS symbol, "
                 f"{_masked(feature_columns(), masked)} FROM fx_base {joins} {_stale_flags(masked)} "
                 "WHERE ts >= $start ORDER BY ts",
                 {"symbol": window.symbol, "start": first.to_pydatetime()})
    return FEATURES_STAGE


def _stale_flags(masked: dict[str, int]) -> str:
    """A join giving each decision time one ``stale_<w>`` column per look-back ``w`` (staleness.sql)."""
    flags = ", ".join(f"bool_or(stale) FILTER (lookback_s = {w}) AS stale_{w}" for w in sorted(set(masked.values())))
    return f"LEFT JOIN (SELECT ts, {flags} FROM fx_stale GROUP BY ts) USING (ts)"


def _masked(columns: list[str], masked: dict[str, int]) -> str:
    """Each column, NULL where the book behind its window was stale."""
    return ", ".join(f"CASE WHEN stale_{masked[c]} THEN NULL ELSE {c} END AS {c}" if c in masked else c
                     for c in columns)


def stale_decisions(conn: duckdb.DuckDBPyConnection, start: pd.Timestamp) -> pd.DatetimeIndex:
    """The decision times from ``start`` on, in the last build, whose book as of the decision time
    was older than :data:`MAX_BOOK_AGE_S` (their book features are NULL)."""
    rows = conn.execute("SELECT ts FROM fx_stale WHERE lookback_s = 0 AND stale AND ts >= $start ORDER BY ts",
                        {"start": pd.Timestamp(start).to_pydatetime()}).fetchall()
    return pd.DatetimeIndex([r[0] for r in rows])


def decision_times(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, step_s: int = DECISION_STEP_S,
                   full_day: bool = True) -> pd.DatetimeIndex:
    """The decision times of ``window``: every step of the day, or (``full_day`` false, a partial
    day) those its symbol's stored book covers, from the day's first snapshot to
    :data:`MAX_BOOK_AGE_S` after its last; the others could only be NULL (no book yet, or a book
    gone stale)."""
    grid = pd.date_range(window.start, window.end, freq=f"{step_s}s", inclusive="left")
    if full_day:
        return grid
    first, last = conn.execute("SELECT min(ts), max(ts) FROM raw_l2_snapshots WHERE symbol = $symbol "
                               "AND ts >= $start AND ts < $end", window.params).fetchall()[0]
    if first is None:
        return grid[:0]
    return grid[(grid >= pd.Timestamp(first)) & (grid <= pd.Timestamp(last) + pd.Timedelta(seconds=MAX_BOOK_AGE_S))]


def keep_decisions(conn: duckdb.DuckDBPyConnection, times: pd.DatetimeIndex) -> None:
    """Drop the staged feature rows outside ``[times[0], times[-1]]`` (a partial day's span)."""
    if len(times) == 0:
        conn.execute(f"DELETE FROM {FEATURES_STAGE}")
        return
    conn.execute(f"DELETE FROM {FEATURES_STAGE} WHERE ts < $first OR ts > $last",
                 {"first": times[0].to_pydatetime(), "last": times[-1].to_pydatetime()})


def _span(step_s: int) -> int:
    """Seconds the decision grid starts before the day: the derived families' span in whole steps."""
    return -(-derived_span_s(step_s) // step_s) * step_s


def _run_family(conn: duckdb.DuckDBPyConnection, family: str, sql: str, params: dict) -> None:
    conn.execute(f"CREATE OR REPLACE TEMP TABLE fx_{family} AS {sql}", bind(sql, params))
    got = [d[0] for d in conn.execute(f"SELECT * FROM fx_{family} LIMIT 0").description][1:]
    if got != feature_columns(family):
        raise ValueError(f"sql/features/{family}.sql returns {got}, the registry lists {feature_columns(family)}")


def data_start(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, peers: Sequence[str] = (),
               step_s: int = DECISION_STEP_S) -> dict[str, pd.Timestamp | None]:
    """Per family, the first time the last build of ``window`` had data for: windows reaching
    before it are warm-up. Cross-asset features need the symbol and every peer: the latest start."""
    own = conn.execute("SELECT min(ts) FROM fx_book").fetchall()[0][0]
    starts = {family: None if own is None else pd.Timestamp(own) for family in FAMILIES}
    load_start = window.start - pd.Timedelta(seconds=_span(step_s) + max_lookback_s())
    firsts = dict(conn.execute(
        "SELECT symbol, min(ts) FROM raw_l2_snapshots WHERE list_contains($peers::VARCHAR[], symbol) "
        "AND ts >= $load_start AND ts < $end GROUP BY symbol",
        {"peers": list(peers), "load_start": load_start.to_pydatetime(), "end": window.end.to_pydatetime()},
    ).fetchall())
    # no peers (a one-symbol universe) or a peer without data: the family is warm-up throughout
    times = [starts["cross_asset"], *(firsts.get(p) for p in peers)]
    starts["cross_asset"] = None if not peers or None in times else max(pd.Timestamp(t) for t in times)
    return starts


def missing_peers(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, peers: Sequence[str]) -> list[str]:
    """The peers without a stored snapshot in ``window``'s day (their raw partition is missing)."""
    present = {r[0] for r in conn.execute(
        "SELECT DISTINCT symbol FROM raw_l2_snapshots WHERE list_contains($peers::VARCHAR[], symbol) "
        "AND ts >= $start AND ts < $end",
        {"peers": list(peers), "start": window.start.to_pydatetime(), "end": window.end.to_pydatetime()}).fetchall()}
    return [p for p in peers if p not in present]


def lookahead_mismatches(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, times, step_s: int = DECISION_STEP_S,
                         atol: float = 1e-9, peers: Sequence[str] = ()) -> list[dict]:
    """Rebuild the features from raw data truncated at each ``t`` in ``times`` and compare the row
    at ``t`` with the full build. Returns one entry per differing (time, column); empty = no look-ahead.
    """
    build_features(conn, window, step_s, peers=peers)
    full = conn.execute(f"SELECT * FROM {FEATURES_STAGE}").fetchdf().set_index("ts")
    mismatches = []
    for t in times:
        t = pd.Timestamp(t)
        build_features(conn, window, step_s, cutoff=t, peers=peers)
        row = conn.execute(f"SELECT * FROM {FEATURES_STAGE} WHERE ts = $t", {"t": t.to_pydatetime()}).fetchdf()
        truncated, complete = row.iloc[0], full.loc[t]
        for col in feature_columns():
            a, b = complete[col], truncated[col]
            same = (pd.isna(a) and pd.isna(b)) or \
                (not pd.isna(a) and not pd.isna(b) and abs(a - b) <= atol * max(1.0, abs(a)))
            if not same:
                mismatches.append({"ts": str(t), "column": col, "full": a, "truncated": b})
    build_features(conn, window, step_s, peers=peers)  # leave the full build staged
    return mismatches
