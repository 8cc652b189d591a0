"""Partitions as Parquet files: the storage path past one machine.

One DuckDB file admits one writing process, so steps on different machines (pods) cannot share
it. Here each date x symbol partition of a table is one file,
``<root>/<table>/date=<date>/symbol=<symbol>/part.parquet``; a step writes only its own file
and reads others through DuckDB's ``read_parquet``, from an in-memory connection of its own, so
no two steps ever contend for a database file.

``root`` is a local directory (or ``file://`` URL), read and written by DuckDB itself, or any
other fsspec URL (``s3://bucket/prefix``, ``memory://...``): its fsspec filesystem is registered
with each connection (``register_filesystem``), so DuckDB reads the files through it and needs
no extension (httpfs cannot be installed without network access to DuckDB's extension
repository). An ``s3://`` root takes its credentials, region and endpoint only from the standard
variables of the AWS SDK (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3`` for an S3-compatible
server), or the SDK's other sources (profile, instance role); nothing here reads or logs them.
Listings are never cached, so a connection sees files other machines wrote after it listed.

A write replaces the partition's file whole, so a reader sees the old file or the new one and a
failed write leaves the old one: locally the file is written beside the target and renamed over
it (atomic on one filesystem); on an object store it is written to a local temporary file, then
uploaded in one request, and a PUT replaces an object whole. A table with no files yet keeps the
schema's empty table.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import duckdb
import fsspec
from fsspec.implementations.local import LocalFileSystem

from atra_pipeline.core.storage.database import PartitionWindow, _identifier, refuse_rows_outside

PARTITIONED_TABLES = ("raw_l2_snapshots", "raw_trades", "features", "labels")
# What the partition steps record besides their rows: each asset's check outcomes of the
# partition (read by the gate), one file per asset, ``<asset>.parquet``.
CHECK_LOG = "asset_check_log"
# ... and the settings each asset built the partition with (read when a model is registered).
SETTINGS_LOG = "partition_settings"
# ... and a capture partition's book at its day's end (sql/schema/014_capture_book_state.sql).
BOOK_STATE_LOG = "capture_book_state"
STORE_TABLES = (*PARTITIONED_TABLES, CHECK_LOG, SETTINGS_LOG, BOOK_STATE_LOG)


def store_of(conn: duckdb.DuckDBPyConnection) -> ParquetStore | None:
    """The store a connection was opened for (``attach_store``), or None for the DuckDB file."""
    try:
        root = conn.execute("SELECT getvariable('atra_storage_root')").fetchall()[0][0]
    except duckdb.Error:
        return None
    return ParquetStore(root) if root else None


def attach_store(conn: duckdb.DuckDBPyConnection, root: str) -> None:
    """Make ``conn`` read and write the partitioned tables as files under ``root``."""
    conn.execute("SET VARIABLE atra_storage_root = $root", {"root": str(root)})
    ParquetStore(root).attach(conn, list(STORE_TABLES))


class ParquetStore:
    """The partition files under ``root``, a local directory or an fsspec URL.

    Parameters
    ----------
    root
        A directory, ``file://`` URL or any fsspec URL (``s3://bucket/prefix``); the filesystem
        package of its protocol (s3fs for ``s3://``) is imported only when such a root is used.
    """

    def __init__(self, root: str | os.PathLike):
        # No listing cache: another machine's new file must show in the next listing. fsspec
        # keeps one instance per protocol and options, so a store per call costs nothing.
        self.fs, stripped = fsspec.core.url_to_fs(str(root).rstrip("/"), use_listings_cache=False)
        self.local = isinstance(self.fs, LocalFileSystem)
        # DuckDB reads a local root natively; any other is named by its URL, which routes
        # DuckDB's reads to the registered filesystem
        self.root = stripped.rstrip("/") if self.local else str(root).rstrip("/")

    def path(self, table: str, window: PartitionWindow, part: str = "part") -> str:
        return (f"{self.root}/{_identifier(table)}/date={window.start.date()}/symbol={window.symbol}/"
                f"{_identifier(part)}.parquet")

    def replace_partition(self, conn: duckdb.DuckDBPyConnection, table: str, rows, columns: list[str],
                          window: PartitionWindow) -> dict[str, int]:
        """Write ``window``'s rows of ``table`` as its file, replacing the previous one; the same
        contract as :func:`atra_pipeline.core.storage.database.replace_partition` (rows outside the window
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
        """Replace the file ``part`` of ``window`` in ``table`` with relation ``source`` (atomic).

        Returns
        -------
        dict
            ``{"deleted": rows of the file replaced, "inserted": rows written}``.
        """
        self._register(conn)
        target = self.path(table, window, part)
        deleted = self._count(conn, target)
        inserted = conn.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0]
        query = f"SELECT {', '.join(_identifier(c) for c in columns)} FROM {source}"
        if self.local:
            self._write_local(conn, query, target)
        else:
            self._upload(conn, query, target)
        self.attach(conn, [table])  # this connection now reads the new file too
        return {"deleted": int(deleted), "inserted": int(inserted)}

    def _write_local(self, conn: duckdb.DuckDBPyConnection, query: str, target: str) -> None:
        # beside the target (same filesystem, so the rename is atomic), named so no reader's
        # ``*.parquet`` pattern matches it while it is half-written
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        temporary = f"{target}.{uuid.uuid4().hex}.tmp"
        try:
            _copy_to(conn, query, temporary)
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def _upload(self, conn: duckdb.DuckDBPyConnection, query: str, target: str) -> None:
        # Complete before anything is sent: DuckDB writing through fsspec would upload what it
        # had written so far when a write failed half-way. A PUT, or a multipart upload (which s3fs
        # aborts on failure), makes the object appear whole or not at all.
        with tempfile.TemporaryDirectory(prefix="atra-upload-") as directory:
            local = os.path.join(directory, "part.parquet")
            _copy_to(conn, query, local)
            self.fs.put_file(local, target)

    def _count(self, conn: duckdb.DuckDBPyConnection, path: str) -> int:
        if not self.fs.exists(path):
            return 0
        try:
            return int(conn.execute("SELECT count(*) FROM read_parquet($p, hive_partitioning = false)",
                                    {"p": path}).fetchall()[0][0])
        except duckdb.IOException:  # an unreadable old file is replaced all the same
            return 0

    def _register(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Let DuckDB read this store's URLs through its fsspec filesystem (once per connection)."""
        if self.local:
            return
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        # DuckDB names a registered filesystem by its first protocol and refuses a second one
        if not conn.filesystem_is_registered(protocols[0]):
            conn.register_filesystem(self.fs)

    def attach(self, conn: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
        """Make each table in ``tables`` read the store's files, through a temporary view that
        shadows the (empty) table of the schema; a table without files keeps the empty table."""
        self._register(conn)
        for table in tables:
            pattern = f"{self.root}/{_identifier(table)}/*/*/*.parquet"
            # read_parquet refuses a pattern no file matches, so an empty table is listed first
            if not self.fs.glob(pattern):
                continue
            # the file paths look like Hive partitions, but the columns are in the files already
            conn.execute(f"CREATE OR REPLACE TEMP VIEW {_identifier(table)} AS "
                         f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = false)")


def _copy_to(conn: duckdb.DuckDBPyConnection, query: str, path: str) -> None:
    conn.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet)")
