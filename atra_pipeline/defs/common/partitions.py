"""The partitions of the pipeline, defined once: UTC date x symbol."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from atra_pipeline.core.settings import BY_NAME, get
from atra_pipeline.core.storage.database import PartitionWindow

DEFAULT_START_DATE = BY_NAME["ATRA_START_DATE"].default
DEFAULT_SYMBOLS = tuple(BY_NAME["ATRA_SYMBOLS"].default.split(","))


def parse_symbols(text: str) -> list[str]:
    """``"btcusdt, ETHUSDT"`` -> ``["BTCUSDT", "ETHUSDT"]``."""
    return [s.strip().upper() for s in text.split(",") if s.strip()]


def configured_symbols() -> list[str]:
    """``$ATRA_SYMBOLS`` (comma-separated) or the defaults."""
    return get("ATRA_SYMBOLS")


def date_keys(start: str, end: str) -> list[str]:
    """The date partition keys from ``start`` to ``end``, both included."""
    return [d.strftime("%Y-%m-%d") for d in pd.date_range(start, end, freq="D")]


def reference_symbol() -> str:
    """``$ATRA_REFERENCE_SYMBOL`` or BTCUSDT: the symbol the cross-asset features compare with."""
    return get("ATRA_REFERENCE_SYMBOL")


date_partitions = dg.DailyPartitionsDefinition(
    start_date=get("ATRA_START_DATE"), timezone="UTC"
)
symbol_partitions = dg.StaticPartitionsDefinition(configured_symbols())
market_partitions = dg.MultiPartitionsDefinition({"date": date_partitions, "symbol": symbol_partitions})


def partition_key(date: str, symbol: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date, "symbol": symbol})


def partition_window(context) -> PartitionWindow:
    """The ``[day start, next day)`` window of one symbol for the run's partition."""
    keys = context.partition_key.keys_by_dimension
    return PartitionWindow.for_day(keys["symbol"], keys["date"])
