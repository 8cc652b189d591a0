"""The settings each partitioned asset built a partition with, kept per (asset, date, symbol) in
``partition_settings``: a model registered on those partitions takes its configuration from them
(:func:`atra_pipeline.core.models.spec.spec_for_partitions`)."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from atra_pipeline.core.storage.database import PartitionWindow, record_partition_rows
from atra_pipeline.core.storage.parquet import SETTINGS_LOG


def record_partition_settings(conn: duckdb.DuckDBPyConnection, asset: str, window: PartitionWindow,
                              settings: dict) -> None:
    rows = pd.DataFrame({"asset": [asset], "symbol": [window.symbol], "day": [window.start.date()],
                         "settings": [json.dumps(settings, sort_keys=True)],
                         "recorded_at": [pd.Timestamp.now(tz="UTC").tz_localize(None)]})
    record_partition_rows(conn, SETTINGS_LOG, rows, window, asset)


def partition_settings(conn: duckdb.DuckDBPyConnection, asset: str, partitions: list[str]) -> dict[str, dict]:
    """``{partition key: settings}`` of ``asset`` for the ``date|symbol`` keys that have a record."""
    rows = conn.execute(f"SELECT strftime(day, '%Y-%m-%d') || '|' || symbol, settings FROM {SETTINGS_LOG} "
                        "WHERE asset = ?", [asset]).fetchall()
    wanted = set(partitions)
    return {key: json.loads(text) for key, text in rows if key in wanted}
