"""File sources: our own schema (CSV or Parquet) and Tardis.dev CSV, staged in DuckDB.

Files are read by DuckDB straight into a temporary *stage* table in the connection that will
store them, validated there, and only then written to the raw table (``storage.replace_partition``).
A file with a problem raises :class:`~atra_pipeline.core.errors.DataError` naming the file, the
data row (1-based, header excluded) and the column, before anything is written.

Formats
-------
``atra``
    Our schema (``schema.L2_COLUMNS`` / ``schema.TRADE_COLUMNS``), ``.csv[.gz]`` or ``.parquet``;
    ``ts`` an ISO timestamp (UTC) or a Parquet timestamp.
``tardis``
    Tardis.dev ``book_snapshot_N`` CSV (``exchange,symbol,timestamp,local_timestamp,
    asks[0].price,asks[0].amount,bids[0].price,...``; N of 5, 10 or 25) and ``trades`` CSV
    (``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``). ``timestamp`` (the
    exchange's time, microseconds since the epoch) stamps the rows. The top 10 levels are kept;
    a file with fewer levels has the rest stored as NULL and the report says so. Snapshots that
    share a timestamp are successive states: the last one in the file is kept (and counted).
"""

from __future__ import annotations

import csv
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import duckdb

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.raw.schema import L2_COLUMNS, L2_LEVEL_COLUMNS, N_LEVELS, TRADE_COLUMNS
from atra_pipeline.core.raw.textio import is_gzip, open_text
from atra_pipeline.core.storage.database import PartitionWindow
from atra_pipeline.core.storage.sql import load_sql, quote_identifier

FileFormat = Literal["atra", "tardis"]
BOOK_STAGE = "stage_l2"
TRADES_STAGE = "stage_trades"

_TARDIS_KEYS = {"exchange": "VARCHAR", "symbol": "VARCHAR", "timestamp": "BIGINT", "local_timestamp": "BIGINT"}
_TARDIS_TRADES = {**_TARDIS_KEYS, "id": "VARCHAR", "side": "VARCHAR", "price": "DOUBLE", "amount": "DOUBLE"}
# ts as TIMESTAMPTZ: a text offset or a zone-aware Parquet column converts to UTC (session zone UTC).
_ATRA_BOOK = {"ts": "TIMESTAMPTZ", "symbol": "VARCHAR", "exchange": "VARCHAR",
              **{c: "DOUBLE" for c in L2_LEVEL_COLUMNS}}
_ATRA_TRADES = {"ts": "TIMESTAMPTZ", "symbol": "VARCHAR", "exchange": "VARCHAR", "price": "DOUBLE",
                "amount": "DOUBLE", "side": "VARCHAR", "trade_id": "VARCHAR"}


def _tardis_level_column(side: str, level: int, field: str) -> str:
    return f"{'bids' if side == 'bid' else 'asks'}[{level}].{'price' if field == 'px' else 'amount'}"


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


@contextmanager
def _reading(path: Path):
    """Any failure to read ``path`` (a corrupt or truncated gzip or Parquet file, bad bytes) as a
    :class:`DataError` naming it; errors that already name file, row and column pass through."""
    try:
        yield
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, duckdb.Error) as error:
        raise DataError(str(path), f"cannot be read (corrupt or truncated?): {type(error).__name__}: "
                                   f"{str(error).splitlines()[0] if str(error) else ''}") from None


def _columns_of(conn: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    if _is_parquet(path):
        rel = conn.execute("SELECT * FROM read_parquet($p) LIMIT 0", {"p": str(path)})
        names = [d[0] for d in rel.description]
        rel.fetchall()  # finish the result: DuckDB 2 refuses other work on a connection with one open
        return names
    with open_text(path) as handle:  # the header line only: no need to sniff the whole file
        header = next(csv.reader(handle), None)
    if not header:
        raise DataError(str(path), "empty file: no header line")
    return header


def _load_typed(conn: duckdb.DuckDBPyConnection, path: Path, header: list[str], types: dict[str, str],
                select: str, table: str) -> None:
    """Read ``path`` with ``types``, apply ``select``, into temp ``table`` in file order.

    Rows keep the file's order, so ``rowid + 1`` of ``table`` is the 1-based data row (DuckDB
    preserves insertion order). On a value DuckDB cannot convert, the file is scanned again to
    name the row and column.
    """
    if _is_parquet(path):
        casts = ", ".join(f"TRY_CAST({quote_identifier(c)} AS {t}) AS {quote_identifier(c)}" for c, t in types.items())
        stored = dict(conn.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet($p))",
                                   {"p": str(path)}).fetchall())
        for col, typ in types.items():
            if stored.get(col) == typ:
                continue  # Parquet is typed: only columns stored as another type can fail to convert
            bad = conn.execute(
                f"SELECT file_row_number + 1, CAST({quote_identifier(col)} AS VARCHAR) "
                "FROM read_parquet($p, file_row_number = true) "
                f"WHERE {quote_identifier(col)} IS NOT NULL "
                f"AND TRY_CAST({quote_identifier(col)} AS {typ}) IS NULL LIMIT 1",
                {"p": str(path)}).fetchall()
            if bad:
                raise DataError(str(path), f"cannot read {bad[0][1]!r} as {typ}", row=int(bad[0][0]), column=col)
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {select} FROM (SELECT {casts} FROM "
                     "read_parquet($p, file_row_number = true) ORDER BY file_row_number)", {"p": str(path)})
        return
    spec = {c: types.get(c, "VARCHAR") for c in header}
    csv_options = {"p": str(path), "compression": "gzip" if is_gzip(path) else "none"}
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {select} FROM read_csv($p, header = true, "
            "auto_detect = false, delim = ',', quote = '\"', compression = $compression, columns = $spec)",
            {**csv_options, "spec": spec})
    except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        _raise_first_unparsable(conn, path, spec, csv_options, exc)


def _raise_first_unparsable(conn: duckdb.DuckDBPyConnection, path: Path, spec: dict[str, str],
                            csv_options: dict, exc: Exception) -> None:
    """Name the first row and column whose text does not convert (the file read as text, in order)."""
    try:
        conn.execute("CREATE OR REPLACE TEMP TABLE stage_text AS SELECT * FROM read_csv($p, header = true, "
                     "auto_detect = false, delim = ',', quote = '\"', compression = $compression, "
                     "columns = $spec)", {**csv_options, "spec": {c: "VARCHAR" for c in spec}})
    except duckdb.Error as structural:  # e.g. a row with too many fields: DuckDB's message has the line
        raise DataError(str(path), f"cannot be read as CSV: {structural}") from None
    first = None
    for col, typ in spec.items():
        if typ == "VARCHAR":
            continue
        found = conn.execute(
            f"SELECT rowid + 1, {quote_identifier(col)} FROM stage_text WHERE {quote_identifier(col)} IS NOT NULL "
            f"AND TRY_CAST({quote_identifier(col)} AS {typ}) IS NULL ORDER BY rowid LIMIT 1").fetchall()
        if found and (first is None or found[0][0] < first[0]):
            first = (found[0][0], col, found[0][1], typ)
    conn.execute("DROP TABLE stage_text")
    if first is None:
        raise DataError(str(path), f"cannot be read: {exc}")
    row, col, value, typ = first
    kind = "timestamp" if typ.startswith("TIMESTAMP") else "number"
    raise DataError(str(path), f"unparsable {kind} {value!r}", row=int(row), column=col)


def _require(path: Path, present: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise DataError(str(path), f"missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(c) for c in missing)}", column=missing[0])


def _first_problem(conn: duckdb.DuckDBPyConnection, sql_file: str, path: Path, table: str,
                   file_columns: dict[str, str]) -> None:
    """Raise for the first row that ``sql/ingest/<sql_file>`` reports, naming the file's own column."""
    per_row = load_sql(f"ingest/{sql_file}").format(stage=table)
    found = conn.execute(load_sql("ingest/first_problem.sql").format(found=per_row)).fetchall()
    if found:
        problem, column, row, detail, n_rows = found[0]
        raise DataError(str(path), f"{problem} ({detail}; {n_rows} such rows in the file)", row=int(row),
                        column=file_columns.get(column, column))


def _tardis_book_layout(path: Path, present: list[str]) -> tuple[str, dict[str, str], int]:
    """SELECT list mapping a Tardis book file to our layout, our-name -> file-name map, levels in file."""
    levels_in_file = 0
    while f"asks[{levels_in_file}].price" in present:
        levels_in_file += 1
    if levels_in_file == 0:
        raise DataError(str(path), "no 'asks[0].price' column: not a Tardis book_snapshot file", column="asks[0].price")
    names = {col: _tardis_level_column(col.split("_")[0], int(col.split("_")[2]), col.split("_")[1])
             for col in L2_LEVEL_COLUMNS if int(col.split("_")[2]) < levels_in_file}
    _require(path, present, list(_TARDIS_KEYS) + list(names.values()))
    parts = ['make_timestamp("timestamp") AS ts', "symbol AS src_symbol", "exchange"]
    parts += [f"{quote_identifier(names[c])} AS {c}" if c in names else f"NULL::DOUBLE AS {c}"
              for c in L2_LEVEL_COLUMNS]
    return ", ".join(parts), {**names, "ts": "timestamp"}, levels_in_file


def _stage_file(conn: duckdb.DuckDBPyConnection, path: Path, header: list[str], types: dict[str, str],
                select: str, problems_sql: str, file_columns: dict[str, str], stage: str, insert_cols: str,
                window: PartitionWindow, report: dict, keep_last_per_ts: bool) -> None:
    """Load one file, validate it whole, append the window's rows of the symbol to ``stage``."""
    _load_typed(conn, path, header, types, select, "stage_file")
    conn.execute("CREATE OR REPLACE TEMP VIEW stage_rows AS SELECT rowid + 1 AS _row, * FROM stage_file")
    _first_problem(conn, problems_sql, path, "stage_rows", file_columns)
    n_read, n_other, n_outside, n_dupes, n_as_stored = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT matches), count(*) FILTER (WHERE matches AND NOT inside), "
        "count(*) FILTER (WHERE matches AND inside) - count(DISTINCT ts) FILTER (WHERE matches AND inside), "
        "count(*) FILTER (WHERE src_symbol = $symbol AND inside) "
        "FROM (SELECT ts, src_symbol, normalise_symbol(src_symbol) = $symbol AS matches, "
        "ts >= $start AND ts < $end AS inside FROM stage_file)", window.params).fetchall()[0]
    # Snapshots sharing a timestamp are successive states: keep the file's last (rare, so only then rank).
    dedupe = ("QUALIFY row_number() OVER (PARTITION BY ts ORDER BY _row DESC) = 1"
              if keep_last_per_ts and n_dupes else "")
    report["rows_read"] += n_read
    report["rows_other_symbols"] += n_other
    report["rows_outside_window"] += n_outside
    if keep_last_per_ts:
        report["duplicate_ts_dropped"] += n_dupes
    conn.execute("DROP VIEW stage_rows")
    stage_empty = conn.execute(f"SELECT count(*) = 0 FROM {stage}").fetchall()[0][0]
    if stage_empty and n_as_stored == n_read and not dedupe:
        # the file is the partition, row for row (the usual case): it becomes the stage, uncopied
        conn.execute(f"DROP TABLE {stage}")
        conn.execute(f"ALTER TABLE stage_file RENAME TO {stage}")
        conn.execute(f"ALTER TABLE {stage} RENAME COLUMN src_symbol TO symbol")
        return
    conn.execute(
        f"INSERT INTO {stage} SELECT ts, $symbol, exchange, {insert_cols} FROM "
        f"(SELECT rowid + 1 AS _row, * FROM stage_file) "
        f"WHERE normalise_symbol(src_symbol) = $symbol AND ts >= $start AND ts < $end {dedupe}",
        window.params)
    conn.execute("DROP TABLE stage_file")


def _new_report(paths: list[Path], fmt: str) -> dict:
    return {"files": [str(p) for p in paths], "format": fmt, "rows_read": 0, "rows_other_symbols": 0,
            "rows_outside_window": 0}


def stage_book(conn: duckdb.DuckDBPyConnection, paths: list[Path], fmt: FileFormat,
               window: PartitionWindow) -> dict:
    """Stage ``window``'s book rows from ``paths`` into temp table ``stage_l2``; return a report."""
    report = {**_new_report(paths, fmt), "duplicate_ts_dropped": 0}
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {BOOK_STAGE} AS SELECT * FROM raw_l2_snapshots LIMIT 0")
    for path in paths:
        with _reading(path):
            _stage_book_file(conn, path, fmt, window, report)
    dupes = conn.execute(f"SELECT count(*) - count(DISTINCT ts) FROM {BOOK_STAGE}").fetchall()[0][0]
    if dupes:
        raise DataError(", ".join(report["files"]), f"{dupes} timestamps appear in more than one file")
    report["rows_staged"] = conn.execute(f"SELECT count(*) FROM {BOOK_STAGE}").fetchall()[0][0]
    return report


def _stage_book_file(conn: duckdb.DuckDBPyConnection, path: Path, fmt: FileFormat, window: PartitionWindow,
                     report: dict) -> None:
    present = _columns_of(conn, path)
    if fmt == "tardis":
        types = {**_TARDIS_KEYS, **{c: "DOUBLE" for c in present if c.startswith(("asks[", "bids["))}}
        select, file_columns, levels = _tardis_book_layout(path, present)
        report["levels_in_source"] = levels
        if levels < N_LEVELS:
            report["padded_levels"] = f"levels {levels}..{N_LEVELS - 1} stored as NULL (source has {levels})"
    else:
        _require(path, present, L2_COLUMNS)
        types, file_columns = _ATRA_BOOK, {}
        select = "timezone('UTC', ts) AS ts, symbol AS src_symbol, exchange, " + ", ".join(L2_LEVEL_COLUMNS)
    _stage_file(conn, path, present, types, select, "book_problems.sql", file_columns, BOOK_STAGE,
                ", ".join(L2_LEVEL_COLUMNS), window, report, keep_last_per_ts=True)


def stage_trades(conn: duckdb.DuckDBPyConnection, paths: list[Path], fmt: FileFormat,
                 window: PartitionWindow) -> dict:
    """Stage ``window``'s trades from ``paths`` into temp table ``stage_trades``; return a report."""
    report = _new_report(paths, fmt)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {TRADES_STAGE} AS SELECT * FROM raw_trades LIMIT 0")
    for path in paths:
        with _reading(path):
            _stage_trades_file(conn, path, fmt, window, report)
    report["rows_staged"] = conn.execute(f"SELECT count(*) FROM {TRADES_STAGE}").fetchall()[0][0]
    return report


def _stage_trades_file(conn: duckdb.DuckDBPyConnection, path: Path, fmt: FileFormat, window: PartitionWindow,
                       report: dict) -> None:
    present = _columns_of(conn, path)
    if fmt == "tardis":
        _require(path, present, list(_TARDIS_TRADES))
        types, file_columns = _TARDIS_TRADES, {"ts": "timestamp", "trade_id": "id"}
        select = ('make_timestamp("timestamp") AS ts, symbol AS src_symbol, exchange, price, amount, '
                  "side, id AS trade_id")
    else:
        _require(path, present, TRADE_COLUMNS)
        types, file_columns = _ATRA_TRADES, {}
        select = "timezone('UTC', ts) AS ts, symbol AS src_symbol, exchange, price, amount, side, trade_id"
    _stage_file(conn, path, present, types, select, "trade_problems.sql", file_columns, TRADES_STAGE,
                "price, amount, side, trade_id", window, report, keep_last_per_ts=False)
