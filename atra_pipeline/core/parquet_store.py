"""Partitions as Parquet files: the storage path past one machine.

One DuckDB file admits one writing process, so steps on different machines (pods) cannot share
it. Here each date x symbol partition of a table is one file,
``<root>/<table>/date=<date>/symbol=<symbol>/part.parquet``; a step writes only its own file
and reads others through DuckDB's ``read_parquet``, from an in-memory connection of its own, so
no two steps ever contend for a database file. ``root`` is a local directory (tested here) or an
fsspec-style URL DuckDB writes and reads with its httpfs extension (``s3://bucket/prefix``).

A write replaces the partition's file whole: locally it is written beside the target and
renamed over it (atomic on one filesystem), so a reader sees the old file or the new one and a
failed write leaves the old one; an object store replaces an object atomically by itself.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb

from atra_pipeline.core.storage import PartitionWindow, _identifier, refuse_rows_outside


PARTITIONED_TABLES = ("raw_l2_snapshots", "raw_trades", "features", "labels")
# What the partition steps record besides their rows: each asset's check outcomes of the
# partition (read by the gate), one file per asset, ``<asset>.parquet``.
CHECK_LOG = "asset_check_log"
# ... and the settings each asset built the partition with (read when a model is registered).
SETTINGS_LOG = "partition_settings"
STORE_TABLES = (*PARTITIONED_TABLES, CHECK_LOG, SETTINGS_LOG)


def store_of(conn: duckdb.DuckDBPyConnection) -> ParquetStore | None:
    """The store a connection was opened for (``attach_store``), or None for the DuckDB file."""
    try:
        root = conn.execute("SELECT getvariable('atra_storage_root')").fetchall()[0][0]
    except duckdb.Error:
        return None
    return ParquetStore(root) if root else None


def attach_store(conn: duckdb.DuckDBPyConnection, root: str) -> None:
    """Make ``conn`` read and write the partitioned tables as files under ``root``."""
    conn.execute(f"SET VARIABLE atra_storage_root = '{root}'")
    ParquetStore(root).attach(conn, list(STORE_TABLES))


class ParquetStore:
    def __init__(self, root: str | os.PathLike):
        self.root = str(root).rstrip("/")
        self.local = "://" not in self.root

    def path(self, table: str, window: PartitionWindow, part: str = "part") -> str:
        return f"{self.root}/{_identifier(table)}/date={window.start.date()}/symbol={window.symbol}/{_identifier(part)}.parquet"

    def replace_partition(self, conn: duckdb.DuckDBPyConnection, table: str, rows, columns: list[str],
                          window: PartitionWindow) -> dict[str, int]:
        """Write ``window``'s rows of ``table`` as its file, replacing the previous one; the same
        contract as :func:`atra_pipeline.core.storage.replace_partition` (rows outside the window
        refused, nothing half-written)."""
        source = rows if isinstance(rows, str) else "_atra_parquet_incoming"
        if not isinstance(rows, str):
            conn.register(source, rows)
        try:
            refuse_rows_outside(conn, source, table, window)
            return self.write(conn, table, source, columns, window)
        finally:
            if not isinstance(rows, str):
                conn.unregister(source)

    def write(self, conn: duckdb.DuckDBPyConnection, table: str, source: str, columns: list[str],
              window: PartitionWindow, part: str = "part") -> dict[str, int]:
        """Replace the file ``part`` of ``window`` in ``table`` with relation ``source`` (atomic)."""
        target = self.path(table, window, part)
        deleted = self._count(conn, target)
        cols = ", ".join(_identifier(c) for c in columns)
        write_to = target
        if self.local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            write_to = f"{target}.{uuid.uuid4().hex}.tmp"
        inserted = conn.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0]
        conn.execute(f"COPY (SELECT {cols} FROM {source}) TO '{write_to}' (FORMAT parquet)")
        if self.local:
            os.replace(write_to, target)
        self.attach(conn, [table])  # this connection now reads the new file too
        return {"deleted": int(deleted), "inserted": int(inserted)}

    def _count(self, conn: duckdb.DuckDBPyConnection, path: str) -> int:
        if self.local and not Path(path).exists():
            return 0
        try:
            return int(conn.execute(f"SELECT count(*) FROM read_parquet('{path}', hive_partitioning = false)").fetchall()[0][0])
        except duckdb.IOException:
            return 0

    def attach(self, conn: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
        """Make each table in ``tables`` read the store's files, through a temporary view that
        shadows the (empty) table of the schema; a table without files keeps the empty table."""
        # the file paths look like Hive partitions, but the columns are in the files already
        for table in tables:
            pattern = f"{self.root}/{_identifier(table)}/*/*/*.parquet"
            if self.local and not list(Path(self.root, table).glob("*/*/*.parquet")):
                continue
            conn.execute(f"CREATE OR REPLACE TEMP VIEW {_identifier(table)} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = false)")
