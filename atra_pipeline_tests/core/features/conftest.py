"""Fixtures of the feature tests: two stored synthetic days of one symbol."""

from __future__ import annotations

import duckdb
import pytest

from atra_pipeline.core.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage import PartitionWindow, prepare, replace_partition
from atra_pipeline.core.synthetic import generate_market_day
from atra_pipeline_tests.conftest import DAY


@pytest.fixture(scope="module")
def two_days():
    """ETHUSDT book and trades of 2024-08-07 and 2024-08-08 in an in-memory DuckDB."""
    conn = duckdb.connect()
    prepare(conn)
    for day in ("2024-08-07", DAY):
        book, trades = generate_market_day("ETHUSDT", day)
        window = PartitionWindow.for_day("ETHUSDT", day)
        replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
        replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)
    yield conn
    conn.close()
