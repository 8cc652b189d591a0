"""Where raw data comes from: one entry point that stages a partition from the chosen source.

Sources
-------
``synthetic`` (default)
    :func:`atra_pipeline.core.raw.synthetic.generate_market_day`, deterministic per (seed, symbol, date);
    ``signal_strength`` scales its designed order-flow signal (0: none).
``file``
    History a user already holds, in one of the formats of ``file_format``: ``atra`` (our schema,
    CSV or Parquet), ``tardis`` (Tardis.dev CSV) or ``binance`` (a raw Binance websocket capture,
    rebuilt into a book by :mod:`atra_pipeline.core.raw.binance_capture`).
``ccxt``
    What the live collector (:mod:`atra_pipeline.core.raw.collector`) appended to
    ``collected_l2_snapshots`` / ``collected_trades``: the partition's day of them becomes the raw
    partition, through the same :func:`atra_pipeline.core.storage.database.replace_partition` seam and checks.

Paths are templates: ``{symbol}``, ``{symbol_lower}``, ``{date}`` (``2024-08-09``) and
``{yyyymmdd}`` are filled in per partition, then glob patterns are expanded (sorted by name).

A Binance capture replays every matched file in name order. A template that names the day
(``{date}`` or ``{yyyymmdd}``, e.g. ``btcusdt_{yyyymmdd}.gz``) reads only the partition's own
files, once, and a day whose files hold no REST snapshot continues the book the previous day's
partition ended in: each capture partition records that book
(:class:`~atra_pipeline.core.raw.binance_capture.BookState`, table ``capture_book_state``) in the
transaction that writes its rows, and the next day reads it (same symbol, same market). The
previous day must then be materialised first; the error says so.
A template that does not name the day (``btcusdt_*.gz``) replays every file for every
partition, as before: the day after the snapshot's gets its book from the previous file.
"""

from __future__ import annotations

import glob
import math
import string
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb
import pandas as pd

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.raw import files
from atra_pipeline.core.storage.database import PARTITION_FILTER, PartitionWindow, record_partition_rows
from atra_pipeline.core.storage.parquet import BOOK_STATE_LOG

if TYPE_CHECKING:
    from atra_pipeline.core.raw.binance_capture import BookState

RawTable = Literal["raw_l2_snapshots", "raw_trades"]
DAY_MS = 86_400_000


@dataclass(frozen=True)
class SourceSpec:
    """How to obtain one partition's raw rows (see the module docstring)."""

    kind: Literal["synthetic", "file", "ccxt"] = "synthetic"
    seed: int = 7
    signal_strength: float = 1.0
    """Synthetic: the designed order-flow signal times this (0: none, a market to test the gate's
    false approvals on; 1: the default ``SymbolSpec.signal_snr``)."""
    interval_ms: int = 1000
    file_format: Literal["atra", "tardis", "binance"] = "atra"
    book_path: str = ""
    trades_path: str = ""
    market: Literal["spot", "usdm_futures", "coinm_futures"] = "spot"
    """Binance capture: the market it was recorded on; ``coinm_futures`` sizes (contracts) are
    converted to base units (:mod:`atra_pipeline.core.raw.binance_capture`)."""
    on_gap: Literal["drop", "error"] = "drop"
    expect_full_day: bool = True

    def __post_init__(self):
        if self.interval_ms <= 0 or DAY_MS % self.interval_ms:
            raise ValueError(f"interval_ms={self.interval_ms} must divide a day of {DAY_MS} ms")
        if not (math.isfinite(self.signal_strength) and self.signal_strength >= 0):
            raise ValueError(f"signal_strength={self.signal_strength}: a finite multiple of the designed signal, >= 0")
        if self.kind == "file" and not self.book_path:
            raise ValueError("source kind 'file' needs book_path")

    @property
    def sampled(self) -> bool:
        """True where rows sit on the ``interval_ms`` grid, so a day's row count is known."""
        return self.kind == "synthetic" or self.file_format == "binance"

    def row_count_bounds(self) -> tuple[int, int]:
        """Expected ``(min_rows, max_rows)`` of a book partition from this source."""
        per_day = DAY_MS // self.interval_ms
        upper = per_day if self.sampled else 2**62
        if not self.expect_full_day:
            return 1, upper
        return (per_day if self.kind == "synthetic" else int(per_day * 0.95)) if self.sampled else 1, upper


def resolve_paths(template: str, window: PartitionWindow) -> list[Path]:
    """Fill ``template``'s placeholders for ``window`` and expand globs; error if nothing matches."""
    day = window.start
    pattern = template.format(symbol=window.symbol, symbol_lower=window.symbol.lower(),
                              date=day.strftime("%Y-%m-%d"), yyyymmdd=day.strftime("%Y%m%d"))
    matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    paths = [Path(m) for m in matches if Path(m).is_file()]
    if not paths:
        raise DataError(pattern, f"no file matches (template {template!r}, partition {window.symbol} {day.date()})")
    return paths


@lru_cache(maxsize=4)
def _synthetic_day(symbol: str, date: str, seed: int, interval_ms: int, signal_strength: float = 1.0):
    # Both raw assets of a partition come from one generated market; in one process it is made once.
    from atra_pipeline.core.raw.synthetic import generate_market_day, symbol_spec

    spec = symbol_spec(symbol)
    spec = replace(spec, signal_snr=spec.signal_snr * signal_strength)
    return generate_market_day(symbol, date, seed=seed, interval_ms=interval_ms, spec=spec)


def names_the_day(template: str) -> bool:
    """True when ``template`` has a ``{date}`` or ``{yyyymmdd}`` field: each day its own files."""
    return any(name in ("date", "yyyymmdd") for _, name, _, _ in string.Formatter().parse(template))


def _stage_capture(conn: duckdb.DuckDBPyConnection, spec: SourceSpec, table: RawTable, window: PartitionWindow,
                   template: str, paths: list[Path]) -> tuple[pd.DataFrame, dict]:
    """A Binance capture's rows of ``table``; the book table's report carries the book the day
    ends in (``book_state``), which the raw step records with the rows."""
    stored, missing = _previous_book(conn, spec, window) if names_the_day(template) else (None, None)
    # the file's size and time are in the key: a file replaced under the same name is read again
    files = tuple((path, path.stat().st_mtime_ns, path.stat().st_size) for path in paths)
    result = _capture(files, window.symbol, spec.market, spec.interval_ms, window.start, window.end,
                      spec.on_gap, stored, missing)
    report = {"source": "binance capture", **result.report}
    if table == "raw_l2_snapshots":
        report["book_state"] = result.book_state
        return result.book, report
    return result.trades, report


@lru_cache(maxsize=4)
def _capture(files: tuple[tuple[Path, int, int], ...], symbol: str, market: str, interval_ms: int,
             start: pd.Timestamp, end: pd.Timestamp, on_gap: str, stored: str | None, missing: str | None):
    # Both raw tables of a partition come from one replay: the files are read once.
    from atra_pipeline.core.raw.binance_capture import BookState, read_binance_capture

    previous = BookState.from_json(stored) if stored is not None else missing
    return read_binance_capture([path for path, _, _ in files], symbol, market=market, interval_ms=interval_ms,
                                start=start, end=end, on_gap=on_gap, previous=previous)


def _previous_book(conn: duckdb.DuckDBPyConnection, spec: SourceSpec,
                   window: PartitionWindow) -> tuple[str | None, str | None]:
    """``(the stored book state of the day before, as JSON, or None; why there is none)``."""
    day = (window.start - pd.Timedelta(days=1)).date()
    rows = conn.execute(f"SELECT market, state FROM {BOOK_STATE_LOG} WHERE symbol = ? AND day = ? "
                        "ORDER BY recorded_at DESC LIMIT 1", [window.symbol, day]).fetchall()
    if not rows:
        return None, (f"no stored book of the previous day ({window.symbol} {day}) to continue: "
                      f"materialise {day}|{window.symbol} first")
    market, state = rows[0]
    if market != spec.market:
        return None, (f"the stored book of the previous day ({window.symbol} {day}) is of market '{market}', "
                      f"this source's is '{spec.market}'")
    return state, None


def record_book_state(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, state: BookState) -> None:
    """Keep the book a capture partition ended its day in, for the next day's files (replacing
    the partition's previous record; in the DuckDB file or the partition files alike)."""
    rows = pd.DataFrame({"symbol": [window.symbol], "day": [window.start.date()], "market": [state.market],
                         "last_update_id": pd.array([state.last_update_id], dtype="Int64"),
                         "state": [state.to_json()],
                         "recorded_at": [pd.Timestamp.now(tz="UTC").tz_localize(None)]})
    record_partition_rows(conn, BOOK_STATE_LOG, rows, window, "raw_l2_snapshots")


def stage_partition(conn: duckdb.DuckDBPyConnection, spec: SourceSpec, table: RawTable,
                    window: PartitionWindow) -> tuple[str | pd.DataFrame, dict]:
    """Make ``window``'s rows of ``table`` ready to write; return ``(rows, report)``.

    ``rows`` is a staged relation name in ``conn`` or a DataFrame, as
    :func:`~atra_pipeline.core.storage.database.replace_partition` takes them. Raises ``DataError`` on
    bad input, before anything is written.
    """
    rows, report = _stage(conn, spec, table, window)
    _refuse_unusable(conn, rows, table, window, report)
    return rows, report


def _stage(conn: duckdb.DuckDBPyConnection, spec: SourceSpec, table: RawTable,
           window: PartitionWindow) -> tuple[str | pd.DataFrame, dict]:
    book = table == "raw_l2_snapshots"
    if spec.kind == "ccxt":
        source = "collected_l2_snapshots" if book else "collected_trades"
        conn.execute(f"CREATE OR REPLACE TEMP TABLE stage_{source} AS SELECT * FROM {source} "
                     f"WHERE {PARTITION_FILTER} ORDER BY ts", window.params)
        return f"stage_{source}", {"source": "ccxt collector", "table": source}
    if spec.kind == "synthetic":
        frames = _synthetic_day(window.symbol, str(window.start.date()), spec.seed, spec.interval_ms,
                                spec.signal_strength)
        rows = frames[0] if book else frames[1]
        return rows, {"source": "synthetic", "seed": spec.seed, "signal_strength": spec.signal_strength,
                      "interval_ms": spec.interval_ms}
    template = spec.book_path if book or spec.file_format == "binance" else spec.trades_path
    if not template:
        raise ValueError(f"source '{spec.file_format}' needs trades_path for raw_trades")
    paths = resolve_paths(template, window)
    if spec.file_format == "binance":
        return _stage_capture(conn, spec, table, window, template, paths)
    stage = files.stage_book if book else files.stage_trades
    report = stage(conn, paths, spec.file_format, window)
    return (files.BOOK_STAGE if book else files.TRADES_STAGE), {"source": spec.file_format, **report}


def _refuse_unusable(conn: duckdb.DuckDBPyConnection, rows, table: RawTable, window: PartitionWindow,
                     report: dict) -> None:
    """Raise before writing when the staged rows cannot stand for the partition.

    An empty stage would silently delete the stored partition (a misspelt symbol, a wrong
    file); rows of several exchanges would interleave two books into one series. (A trade id
    twice is the blocking rule ``trade_id_unique``'s, judged on the staged rows before any write.)
    """
    files_read = [f if isinstance(f, str) else f.get("path", str(f)) for f in report.get("files", [])]
    where = ", ".join(files_read) or report.get("source", "source")
    if isinstance(rows, str):
        relation = rows
    else:
        relation = "_atra_staged"
        conn.register(relation, rows)
    try:
        n_rows, exchanges = conn.execute(
            f"SELECT count(*), list(DISTINCT exchange ORDER BY exchange) FROM {relation}").fetchall()[0]
    finally:
        if relation == "_atra_staged":
            conn.unregister(relation)
    if n_rows == 0:
        if report.get("source") == "binance capture":
            from atra_pipeline.core.raw.binance_capture import why_no_rows

            why = why_no_rows(report, table)
        else:
            counts = {k: report[k] for k in ("rows_read", "rows_other_symbols", "rows_outside_window") if k in report}
            why = str(counts or report.get("dropped", "no row read"))
        raise DataError(where, f"no {table} rows for partition {window.symbol} {window.start.date()} "
                               f"({why}); nothing was written")
    if len(exchanges) > 1:
        raise DataError(where, f"rows of several exchanges {exchanges} for {window.symbol}: "
                               "one partition holds one venue's data", column="exchange")
