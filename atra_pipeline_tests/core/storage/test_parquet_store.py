"""Partitions as Parquet files under a storage root: several processes write partitions at once
with no shared database file, a rewrite replaces a partition whole, a refused write leaves the old
file, and the feature SQL reads the files like the tables."""

from __future__ import annotations

import multiprocessing as mp

import duckdb
import pandas as pd
import pytest

from atra_pipeline.core.features.build import build_features
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import PartitionWindow, prepare
from atra_pipeline.core.storage.parquet import ParquetStore

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
DAY = "2024-08-08"


def write_partition(root: str, symbol: str, day: str) -> int:
    """One step on its own machine: an in-memory DuckDB, its own partition's file."""
    conn = duckdb.connect()
    prepare(conn)
    book, trades = generate_market_day(symbol, day, interval_ms=10_000)
    window = PartitionWindow.for_day(symbol, day)
    store = ParquetStore(root)
    store.replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
    store.replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)
    return len(book)


def reader(root) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    prepare(conn)
    ParquetStore(root).attach(conn, ["raw_l2_snapshots", "raw_trades"])
    return conn


@pytest.mark.slow  # three writer processes (spawned: each imports the package)
def test_processes_write_partitions_at_once_and_readers_see_them_all(tmp_path):
    jobs = [(str(tmp_path), s, d) for s in SYMBOLS for d in ("2024-08-07", DAY)]
    with mp.get_context("spawn").Pool(3) as pool:
        counts = pool.starmap(write_partition, jobs)
    conn = reader(tmp_path)
    stored = dict(conn.execute("SELECT symbol, count(*) FROM raw_l2_snapshots GROUP BY symbol").fetchall())
    assert stored == {s: 2 * 8640 for s in SYMBOLS} and counts == [8640] * 6
    assert not list(tmp_path.rglob("*.tmp"))  # every write renamed into place
    # the research SQL reads the files as it reads the tables
    build_features(conn, PartitionWindow.for_day("ETHUSDT", DAY), 60, peers=["BTCUSDT"])
    features = conn.execute("SELECT * FROM fx_features").fetchdf()
    assert len(features) == 1440 and features["ofi_norm_1m"].notna().all() and features["xa_corr_1h"].notna().all()


def test_a_rewrite_replaces_and_a_refused_write_keeps_the_old_file(tmp_path):
    conn = duckdb.connect()
    prepare(conn)
    store = ParquetStore(tmp_path)
    window = PartitionWindow.for_day("BTCUSDT", DAY)
    book, _ = generate_market_day("BTCUSDT", DAY, interval_ms=60_000)
    assert store.replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window) == {
        "deleted": 0, "inserted": 1440}
    half = book.iloc[:720]
    assert store.replace_partition(conn, "raw_l2_snapshots", half, L2_COLUMNS, window) == {
        "deleted": 1440, "inserted": 720}
    bad = half.assign(ts=half["ts"] + pd.Timedelta(days=1))  # rows of the next day
    with pytest.raises(ValueError, match="outside partition"):
        store.replace_partition(conn, "raw_l2_snapshots", bad, L2_COLUMNS, window)
    assert reader(tmp_path).execute("SELECT count(*), max(ts) FROM raw_l2_snapshots").fetchall()[0] == (
        720, half["ts"].max().to_pydatetime())
