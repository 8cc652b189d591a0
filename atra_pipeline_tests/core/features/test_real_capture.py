"""The catalogue on real data: the Binance spot capture of BTCUSDT and ETHUSDT crossing midnight
(2024-08-08 23:54 to 2024-08-09 00:05), stored as two daily partitions per symbol. The first
minutes of 2024-08-09 read the previous day's partition; no decision time reads later data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.features.build import build_features, lookahead_mismatches
from atra_pipeline.core.features.registry import FEATURES
from atra_pipeline.core.raw.binance_capture import read_binance_capture
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, replace_partition

NEXT_DAY = "2024-08-09"


@pytest.fixture
def captured(conn, shared_data):
    for symbol in ("BTCUSDT", "ETHUSDT"):
        paths = sorted((shared_data / "binance_spot_capture").glob(f"{symbol.lower()}_*.gz"))
        result = read_binance_capture(paths, symbol, interval_ms=1000)
        for day in ("2024-08-08", NEXT_DAY):
            window = PartitionWindow.for_day(symbol, day)
            in_day = lambda f, window=window: f[(f["ts"] >= window.start) & (f["ts"] < window.end)]  # noqa: E731
            replace_partition(conn, "raw_l2_snapshots", in_day(result.book), L2_COLUMNS, window)
            replace_partition(conn, "raw_trades", in_day(result.trades), TRADE_COLUMNS, window)
    return conn


def test_no_lookahead_across_midnight_on_the_real_capture(captured):
    window = PartitionWindow.for_day("ETHUSDT", NEXT_DAY)
    times = pd.to_datetime([f"{NEXT_DAY} 00:00:00", f"{NEXT_DAY} 00:00:40", f"{NEXT_DAY} 00:03:10"])
    assert lookahead_mismatches(captured, window, times, step_s=10, peers=["BTCUSDT"]) == []


def test_the_first_minute_of_the_day_reads_the_previous_days_partition(captured):
    build_features(captured, PartitionWindow.for_day("ETHUSDT", NEXT_DAY), step_s=10, peers=["BTCUSDT"])
    eth = captured.execute("SELECT * FROM fx_features").fetchdf().set_index("ts")
    build_features(captured, PartitionWindow.for_day("BTCUSDT", NEXT_DAY), step_s=10, peers=["ETHUSDT"])
    btc = captured.execute("SELECT * FROM fx_features").fetchdf().set_index("ts")
    first = eth.loc[f"{NEXT_DAY} 00:00:00":f"{NEXT_DAY} 00:04:50"]
    # windows up to 5 minutes are covered by the previous day's six minutes of capture
    short = [f.name for f in FEATURES if f.lookback(10) <= 300]
    assert first[short].notna().all().all(), first[short].columns[first[short].isna().any()].tolist()
    assert np.isfinite(first[short].to_numpy()).all()
    # ETH's reference columns are BTC's own features on the real books too
    times = first.index
    np.testing.assert_allclose(first["xa_ref_ret_1m"], btc.loc[times, "ret_1m"], rtol=1e-12)
    np.testing.assert_allclose(first["xa_ref_ofi_norm_1m"], btc.loc[times, "ofi_norm_1m"], rtol=1e-9)
