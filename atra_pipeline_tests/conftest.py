"""Shared fixtures: a migrated DuckDB, the real-data folder, small valid books and trades."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.raw.schema import L2_COLUMNS, N_LEVELS, TRADE_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, prepare
from atra_pipeline.core.storage.paths import SHARED_DATA_DIR

DAY = "2024-08-08"


def pytest_collection_modifyitems(items):
    """A serial test is a slow one too: it runs alone because it starts processes or servers
    whose timing it judges, so `make test-fast` (``-m "not slow and not serial"``) and a plain
    ``-m "not slow"`` both leave it out."""
    for item in items:
        if item.get_closest_marker("serial") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def conn():
    connection = duckdb.connect()
    prepare(connection)
    yield connection
    connection.close()


@pytest.fixture
def shared_data():
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"real exchange samples not found at {SHARED_DATA_DIR} (../shared/data next to the project)")
    return SHARED_DATA_DIR


@pytest.fixture
def window() -> PartitionWindow:
    return PartitionWindow.for_day("BTCUSDT", DAY)


def make_book(n: int = 60, start: str = DAY, step_s: float = 1.0, mid: float = 100.0,
              symbol: str = "BTCUSDT") -> pd.DataFrame:
    """A valid 10-level book: 1-tick spread around ``mid``, levels 1 tick apart, sizes 1..10."""
    ts = pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=step_s)).as_unit("us")
    frame = pd.DataFrame({"ts": ts, "symbol": symbol, "exchange": "test"})
    for i in range(N_LEVELS):
        frame[f"bid_px_{i}"] = mid - 0.005 - 0.01 * i
        frame[f"ask_px_{i}"] = mid + 0.005 + 0.01 * i
        frame[f"bid_sz_{i}"] = float(i + 1)
        frame[f"ask_sz_{i}"] = float(i + 1)
    return frame[L2_COLUMNS]


def make_trades(book: pd.DataFrame, every: int = 5) -> pd.DataFrame:
    """One trade every ``every`` snapshots, alternating buy at the ask and sell at the bid."""
    rows = book.iloc[::every]
    sides = np.where(np.arange(len(rows)) % 2 == 0, "buy", "sell")
    return pd.DataFrame({
        "ts": rows["ts"].to_numpy() + np.timedelta64(100, "ms"),
        "symbol": rows["symbol"].to_numpy(),
        "exchange": "test",
        "price": np.where(sides == "buy", rows["ask_px_0"], rows["bid_px_0"]),
        "amount": 0.5,
        "side": sides,
        "trade_id": [f"t{i}" for i in range(len(rows))],
    })[TRADE_COLUMNS]
