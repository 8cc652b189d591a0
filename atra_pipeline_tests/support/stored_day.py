"""A stored research day for replay and parity: raw partitions of the previous day and the day,
the day's features and labels written as the assets write them, for a universe of symbols.
Shared by the parity test and ``benchmarks/parity.py``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from atra_pipeline.core.features.build import FEATURES_STAGE, KEY_COLUMNS, build_features, ensure_features_table
from atra_pipeline.core.features.registry import cross_asset_peers, feature_columns
from atra_pipeline.core.labels.partition import LABEL_COLUMNS, LabelSettings, label_partition
from atra_pipeline.core.raw.binance_capture import read_binance_capture
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, replace_partition
from atra_pipeline.core.strategy.fills import CostSettings
from atra_pipeline.core.strategy.rules import StrategySettings


def store_raw(conn: duckdb.DuckDBPyConnection, market: dict) -> None:
    """``market``: ``{(symbol, date): (book, trades)}``."""
    for (symbol, day), (book, trades) in market.items():
        window = PartitionWindow.for_day(symbol, day)
        replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
        replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)


def store_research(conn: duckdb.DuckDBPyConnection, symbols: list[str], day: str, step_s: int = 60,
                   labels: LabelSettings = LabelSettings()) -> None:
    """Features and labels of ``day`` for ``symbols`` from the stored raw partitions."""
    ensure_features_table(conn)
    for symbol in symbols:
        window = PartitionWindow.for_day(symbol, day)
        build_features(conn, window, step_s, peers=cross_asset_peers(symbol, symbols))
        replace_partition(conn, "features", FEATURES_STAGE, [*KEY_COLUMNS, *feature_columns()], window)
    for symbol in symbols:
        window = PartitionWindow.for_day(symbol, day)
        frame, _ = label_partition(conn, window, labels)
        replace_partition(conn, "labels", frame, LABEL_COLUMNS, window)


# The real capture is 11 minutes long: a 10-second grid, a 60-second vertical barrier, the primary
# model gated on the imbalance itself (its hourly z-score is still warming up), and no fee (the
# barriers of a minute are a few bp wide: with fees no event clears its costs, and parity needs trades).
REAL_SPEC = dict(step_s=10, labels=LabelSettings(max_holding_s=60, warmup_s=3600, primary_on_zscore=False,
                                                 z_threshold=0.2),
                 strategy=StrategySettings(costs=CostSettings(taker_fee_bps=0.0)))
CAPTURE_SYMBOLS = ["BTCUSDT", "ETHUSDT"]
CAPTURE_DAYS = ("2024-08-08", "2024-08-09")


def store_capture(conn: duckdb.DuckDBPyConnection, folder: Path) -> list[str]:
    """The Binance spot capture's two days (``folder``: ``../shared/data/binance_spot_capture``) as
    raw partitions, with their features and labels by :data:`REAL_SPEC`; returns the symbols."""
    market = {}
    for symbol in CAPTURE_SYMBOLS:
        files = sorted(folder.glob(f"{symbol.lower()}_*.gz"))
        for day in CAPTURE_DAYS:
            start = pd.Timestamp(day)
            got = read_binance_capture(files, symbol, start=start, end=start + pd.Timedelta(days=1))
            market[(symbol, day)] = (got.book, got.trades)
    store_raw(conn, market)
    for day in CAPTURE_DAYS:
        store_research(conn, CAPTURE_SYMBOLS, day, step_s=REAL_SPEC["step_s"], labels=REAL_SPEC["labels"])
    return list(CAPTURE_SYMBOLS)


