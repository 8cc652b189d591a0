"""DuckDB storage: schema migrations and transactional, idempotent partition writes.

A partition of a raw table is the set of rows of one symbol inside one time window
``[start, end)``. Writing a partition deletes exactly those rows and inserts the new ones
in one transaction, so re-materialising never duplicates and a failure keeps the old rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pandas as pd

from atra_pipeline.core.storage.paths import SQL_DIR

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the ``with`` block in one DuckDB transaction: committed if it completes, rolled back
    (and the error re-raised) if anything escapes it, an interrupt included, so a failed write
    never leaves part of its rows behind.

    Parameters
    ----------
    conn
        The connection; no transaction may be open on it.

    Yields
    ------
    duckdb.DuckDBPyConnection
        ``conn``.
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def migrations() -> list[tuple[int, str]]:
    """``(version, file name)`` of every file in ``sql/schema/``, in version order."""
    found = []
    for path in sorted((SQL_DIR / "schema").glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path}: schema files are named NNN_description.sql")
        found.append((int(match.group(1)), path.name))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate schema versions in {SQL_DIR / 'schema'}: {versions}")
    return found


def prepare(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Make a connection ready for the project: session time zone UTC, schema migrated.

    UTC matters: DuckDB converts time-zone-aware input (a Parquet ``TIMESTAMPTZ``, an ISO text
    with an offset) to our naive UTC ``TIMESTAMP`` through the session's zone, which otherwise
    is the machine's. Returns the schema versions applied now.
    """
    conn.execute("SET TimeZone = 'UTC'")
    return migrate(conn)


def migrate(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the schema files not yet applied; return the versions applied now.

    Each file runs in its own transaction together with its ``schema_version`` row, so a
    failed migration leaves the database at the previous version. Re-running is a no-op.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_version").fetchall()}
    applied = []
    for version, name in migrations():
        if version in done:
            continue
        with transaction(conn):
            conn.execute((SQL_DIR / "schema" / name).read_text())
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?, now()::TIMESTAMP)", [version, name]
            )
        applied.append(version)
    return applied


# The rows of one partition, with the parameters of PartitionWindow.params.
PARTITION_FILTER = "symbol = $symbol AND ts >= $start AND ts < $end"


@dataclass(frozen=True)
class PartitionWindow:
    """Rows of one symbol with ``start <= ts < end`` (naive UTC timestamps)."""

    symbol: str
    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def for_day(cls, symbol: str, date) -> PartitionWindow:
        start = pd.Timestamp(date).normalize()
        return cls(symbol, start, start + pd.Timedelta(days=1))

    @property
    def params(self) -> dict:
        return {"symbol": self.symbol, "start": self.start.to_pydatetime(), "end": self.end.to_pydatetime()}


def replace_partition(conn: duckdb.DuckDBPyConnection, table: str, rows, columns: list[str],
                      window: PartitionWindow) -> dict[str, int]:
    """Replace ``window``'s rows of ``table`` with ``rows`` in one transaction.

    Parameters
    ----------
    rows
        A pandas DataFrame, Arrow table, or the name of a relation in ``conn`` holding ``columns``.
        Every row must belong to ``window``: a row outside it would make the write non-idempotent,
        so it is an error and nothing is written. Rows are stored in the order given (every
        source gives time order, which keeps DuckDB's min/max zone maps on ``ts`` tight).

    Returns
    -------
    dict
        ``{"deleted": rows removed, "inserted": rows written}``.
    """
    return replace_partitions(conn, {table: (rows, columns)}, window)[table]


def replace_partitions(conn: duckdb.DuckDBPyConnection, tables: dict[str, tuple[object, list[str]]],
                       window: PartitionWindow, then: Callable[[], None] | None = None) -> dict[str, dict[str, int]]:
    """Replace ``window``'s rows of several tables (``{table: (rows, columns)}``, rows as in
    :func:`replace_partition`) in one transaction, then run ``then`` (what the step records about
    the partition) inside the same transaction: all of it is written, or none of it.

    With the partition-file store (:mod:`atra_pipeline.core.storage.parquet`) each table's file is
    replaced whole, one table after the other.

    Returns
    -------
    dict
        ``{table: {"deleted": rows removed, "inserted": rows written}}``.
    """
    from atra_pipeline.core.storage.parquet import store_of  # the store module builds on this one

    if (store := store_of(conn)) is not None:  # a connection of the scale-out path: the tables are files
        written = {t: store.replace_partition(conn, t, rows, columns, window) for t, (rows, columns) in tables.items()}
        if then is not None:
            then()
        return written
    sources = {}
    try:
        for table, (rows, _) in tables.items():
            _identifier(table)
            if isinstance(rows, str):
                sources[table] = _identifier(rows)
            else:
                sources[table] = f"_atra_incoming_{table}"
                conn.register(sources[table], rows)
            refuse_rows_outside(conn, sources[table], table, window)
        written = {}
        with transaction(conn):
            for table, (_, columns) in tables.items():
                select_cols = ", ".join(_identifier(c) for c in columns)
                deleted = conn.execute(f"DELETE FROM {table} WHERE {PARTITION_FILTER}", window.params).fetchall()[0][0]
                inserted = conn.execute(
                    f"INSERT INTO {table} ({select_cols}) SELECT {select_cols} FROM {sources[table]}"
                ).fetchall()[0][0]
                written[table] = {"deleted": int(deleted), "inserted": int(inserted)}
            if then is not None:
                then()
    finally:
        for table, source in sources.items():
            if source == f"_atra_incoming_{table}":
                conn.unregister(source)
    return written


def record_partition_rows(conn: duckdb.DuckDBPyConnection, table: str, rows: pd.DataFrame, window: PartitionWindow,
                          asset: str) -> None:
    """Keep what ``asset`` recorded about partition ``window`` (its check outcomes, its settings)
    in ``table``, replacing what it recorded there before: in the DuckDB file a keyed upsert, in
    partition files one file per asset beside the partition."""
    from atra_pipeline.core.storage.parquet import store_of

    if (store := store_of(conn)) is not None:
        conn.register("_atra_partition_rows", rows)
        try:
            store.write(conn, table, "_atra_partition_rows", list(rows.columns), window, part=asset)
        finally:
            conn.unregister("_atra_partition_rows")
        return
    conn.register("_atra_partition_rows", rows)
    try:
        conn.execute(f"INSERT OR REPLACE INTO {_identifier(table)} SELECT * FROM _atra_partition_rows")
    finally:
        conn.unregister("_atra_partition_rows")


def refuse_rows_outside(conn: duckdb.DuckDBPyConnection, source: str, table: str, window: PartitionWindow) -> None:
    """Raise (before anything is written) if a row of relation ``source`` is not in ``window``."""
    outside = conn.execute(
        # Judge ts as it will be stored: a nanosecond value can round across the window's end.
        f"SELECT count(*) FROM (SELECT symbol, CAST(ts AS TIMESTAMP) AS ts FROM {source}) "
        "WHERE symbol IS DISTINCT FROM $symbol OR ts IS NULL OR ts < $start OR ts >= $end",
        window.params,
    ).fetchall()[0][0]
    if outside:
        raise ValueError(f"{outside} rows to write into {table} lie outside partition "
                         f"{window.symbol} [{window.start}, {window.end}); nothing was written")


def read_partition(conn: duckdb.DuckDBPyConnection, table: str, window: PartitionWindow,
                   limit: int | None = None) -> pd.DataFrame:
    """``window``'s rows of ``table`` in time order (the first ``limit`` of them if given)."""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    return conn.execute(f"SELECT * FROM {_identifier(table)} WHERE {PARTITION_FILTER} ORDER BY ts{tail}",
                        window.params).fetchdf()


def partition_time_range(conn: duckdb.DuckDBPyConnection, table: str, window: PartitionWindow) -> tuple:
    """``(first ts, last ts)`` of ``window``'s rows of ``table`` (``None`` when empty)."""
    return tuple(conn.execute(f"SELECT min(ts), max(ts) FROM {_identifier(table)} WHERE {PARTITION_FILTER}",
                              window.params).fetchall()[0])
