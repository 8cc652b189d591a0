"""Fixtures of the feature tests: two stored synthetic days of ETHUSDT and its cross-asset reference."""

from __future__ import annotations

import duckdb
import pytest

from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import PartitionWindow, prepare, replace_partition
from atra_pipeline_tests.conftest import DAY

ETH_PEERS = ["BTCUSDT"]  # ETHUSDT's cross-asset reference (registry.cross_asset_peers)


@pytest.fixture(scope="module")
def two_days():
    """ETHUSDT and BTCUSDT books and trades of 2024-08-07 and 2024-08-08 in an in-memory DuckDB."""
    conn = duckdb.connect()
    prepare(conn)
    for symbol in ("ETHUSDT", *ETH_PEERS):
        for day in ("2024-08-07", DAY):
            book, trades = generate_market_day(symbol, day)
            window = PartitionWindow.for_day(symbol, day)
            replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
            replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)
    yield conn
    conn.close()
