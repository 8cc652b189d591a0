"""One raw partition, book and trades together: staged, judged by every raw rule, then written in
one transaction, or refused with the stored rows of both tables untouched.

Why together: the trades' rules read the book (a trade is judged against the mid), and a
partition whose book is new and whose trades are old (or the reverse) is two days spliced into
one. Why judged before the write: a blocking rule that fails after the write has already
replaced a good day with a bad one.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.quality.rules import CheckOutcome, record_check_outcomes, run_rules
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.raw.sources import SourceSpec, record_book_state, stage_partition
from atra_pipeline.core.storage.database import PartitionWindow, refuse_rows_outside, replace_partitions
from atra_pipeline.core.storage.partition_settings import partition_settings, record_partition_settings

RAW_TABLES = {"raw_l2_snapshots": L2_COLUMNS, "raw_trades": TRADE_COLUMNS}
# The asset whose partition settings hold the partition's source (one record for both tables).
SOURCE_RECORD = "raw_l2_snapshots"


@dataclass
class StagedRaw:
    """A partition's rows of both raw tables in the connection: ``relations`` names, per table, the
    source's stage table or the frame registered as a view (``staged_<table>``)."""

    window: PartitionWindow
    relations: dict[str, str]
    reports: dict[str, dict]
    source: dict
    book_state: object | None = None
    """A Binance capture's book at the day's end (``binance_capture.BookState``), recorded with
    the rows for the next day's file."""

    def outcomes(self, conn: duckdb.DuckDBPyConnection, params: dict) -> dict[str, list[CheckOutcome]]:
        """Every declared rule of each table, judged on the staged rows (the trades' rules
        against the staged book)."""
        relations = {"book": self.relations["raw_l2_snapshots"], "trades": self.relations["raw_trades"]}
        return {table: run_rules(conn, table, {**relations, "target": self.relations[table]}, self.window, params)
                for table in RAW_TABLES}


def source_of(spec: SourceSpec, reports: dict[str, dict]) -> dict:
    """Where the partition's rows come from: ``kind``, ``format``, ``market`` (captures) and the
    ``files`` read, as recorded with the partition."""
    files = sorted({f if isinstance(f, str) else f.get("path", str(f))
                    for report in reports.values() for f in report.get("files", [])})
    return {"kind": spec.kind, "format": spec.file_format if spec.kind == "file" else None,
            "market": spec.market if spec.kind == "file" and spec.file_format == "binance" else None,
            "files": files}


def _identity(source: dict) -> str:
    """A source as a reader names it; rows of one identity may replace each other freely."""
    detail = ", ".join(v for v in (source.get("format"), source.get("market")) if v)
    return f"{source['kind']} ({detail})" if detail else source["kind"]


def _described(source: dict) -> str:
    files = source.get("files") or []
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return _identity(source) + (f" from {shown}" if shown else "")


def stage_raw(conn: duckdb.DuckDBPyConnection, spec: SourceSpec, window: PartitionWindow) -> StagedRaw:
    """Stage both tables of ``window`` from ``spec``; raise ``DataError`` on input that cannot
    stand for the partition (nothing is written here)."""
    relations, reports = {}, {}
    for table in RAW_TABLES:
        rows, report = stage_partition(conn, spec, table, window)
        # read in place, never copied: a stage table of the source's own (one per table), or the
        # frame as a view for the rest of the step
        relation = rows if isinstance(rows, str) else f"staged_{table}"
        if not isinstance(rows, str):
            conn.register(relation, rows)
        refuse_rows_outside(conn, relation, table, window)
        relations[table], reports[table] = relation, report
    return StagedRaw(window, relations, reports, source_of(spec, reports),
                     reports["raw_l2_snapshots"].pop("book_state", None))


def refuse_other_source(conn: duckdb.DuckDBPyConnection, staged: StagedRaw, replace_source: bool) -> dict | None:
    """Raise ``DataError`` when the stored partition came from a different source than
    ``staged`` and ``replace_source`` is not set; return the stored source (``None`` if none
    is recorded)."""
    window = staged.window
    key = f"{window.start.date()}|{window.symbol}"
    stored = partition_settings(conn, SOURCE_RECORD, [key]).get(key, {}).get("source")
    if stored is None or replace_source or _identity(stored) == _identity(staged.source):
        return stored
    held = conn.execute("SELECT count(*) FROM raw_l2_snapshots WHERE symbol = $symbol AND ts >= $start "
                        "AND ts < $end", window.params).fetchall()[0][0]
    if held:
        raise DataError(f"raw partition {key}",
                        f"holds {held} book rows from {_described(stored)}; this run's source is "
                        f"{_described(staged.source)}. Set replace_source: true (resources.raw_source.config) "
                        "to replace them; nothing was written")
    return stored


class PartitionRefused(DataError):
    """A blocking rule failed on the staged rows: nothing was written."""

    def __init__(self, window: PartitionWindow, failed: list[CheckOutcome]):
        self.failed = failed
        super().__init__(f"raw partition {window.start.date()}|{window.symbol}",
                         "refused by blocking rules " + "; ".join(o.message() for o in failed)
                         + "; nothing was written, the stored rows of both tables are kept")


def write_raw(conn: duckdb.DuckDBPyConnection, staged: StagedRaw,
              outcomes: dict[str, list[CheckOutcome]]) -> dict[str, dict[str, int]]:
    """Write both tables with their check outcomes and the source, in one transaction; raise
    :class:`PartitionRefused` instead when a blocking rule failed."""
    if failed := [o for table in outcomes.values() for o in table if o.check.blocking and not o.passed]:
        raise PartitionRefused(staged.window, failed)
    window = staged.window

    def record():
        for table, found in outcomes.items():
            record_check_outcomes(conn, table, window, {o.check.name: o.passed for o in found})
        record_partition_settings(conn, SOURCE_RECORD, window, {"source": staged.source})
        if staged.book_state is not None:
            record_book_state(conn, window, staged.book_state)

    return replace_partitions(conn, {t: (staged.relations[t], RAW_TABLES[t]) for t in RAW_TABLES}, window, then=record)
