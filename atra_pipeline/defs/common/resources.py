"""Resources: the project's DuckDB database and the raw-data source."""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from atra_pipeline.core.quality.rules import plausibility_params
from atra_pipeline.core.raw.sources import SourceSpec
from atra_pipeline.core.settings import get
from atra_pipeline.core.storage.database import prepare
from atra_pipeline.core.storage.parquet import attach_store
from atra_pipeline.core.storage.paths import duckdb_path

# Every step that opens the database is in this pool; the instance limits it to 1 (DuckDB
# allows one writing process per file).
DUCKDB_POOL = "duckdb"
# With $ATRA_STORAGE_ROOT the steps of one partition (raw, features, labels) never open the
# database file (AtraDuckDB.partition_connection): they get a pool of their own, whose limit a
# deployment sets to the parallelism it wants (`dagster instance concurrency set partition_files 32`).
PARTITION_POOL = "partition_files" if get("ATRA_STORAGE_ROOT") else DUCKDB_POOL


class AtraDuckDB(DuckDBResource):
    """dagster-duckdb's resource, with the schema migrated on first use and the connection
    always closed (also when the step fails), so no lock outlives its step.

    With ``storage_root`` (default ``$ATRA_STORAGE_ROOT``) the partitioned tables, and the check
    outcomes of their partitions, are Parquet files under that root instead
    (:mod:`atra_pipeline.core.storage.parquet`): the steps of one partition (raw data, features,
    labels) take :meth:`partition_connection`, an in-memory database of their own over those
    files, so any number of them run at once on several processes or machines; the other steps
    (research, live, execution) keep their tables in the DuckDB file, one writer at a time.
    """

    storage_root: str = get("ATRA_STORAGE_ROOT") or ""

    @contextmanager
    def get_connection(self):
        """The DuckDB file; with ``storage_root``, its partitioned tables read from and written to
        the partition files."""
        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        conn = _connect_with_retry(self.database, {"custom_user_agent": "atra", **self.connection_config})
        try:
            prepare(conn)
            if self.storage_root:
                attach_store(conn, self.storage_root)
            yield conn
        finally:
            conn.close()

    @contextmanager
    def partition_connection(self):
        """For a step of one date x symbol partition: with ``storage_root`` an in-memory database
        over the partition files (no database file at all), else :meth:`get_connection`."""
        if not self.storage_root:
            with self.get_connection() as conn:
                yield conn
            return
        conn = duckdb.connect(":memory:")
        try:
            prepare(conn)
            attach_store(conn, self.storage_root)
            yield conn
        finally:
            conn.close()


def _connect_with_retry(database: str, config: dict, attempts: int = 8) -> duckdb.DuckDBPyConnection:
    # The UI or a notebook may hold the file a moment; the pool keeps our own steps apart.
    for attempt in range(attempts):
        try:
            return duckdb.connect(database, read_only=False, config=config)
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def default_duckdb() -> AtraDuckDB:
    return AtraDuckDB(database=str(duckdb_path()))


class RawSourceResource(dg.ConfigurableResource):
    """Where ``raw_l2_snapshots`` and ``raw_trades`` come from, set once for both assets.

    Set it in the launchpad under ``resources: raw_source: config:``. ``kind`` defaults to
    ``$ATRA_RAW_SOURCE`` (synthetic unless set), also in a run that sets other fields only;
    ``kind: synthetic`` needs nothing else; ``kind: file`` reads ``book_path`` / ``trades_path`` templates
    (placeholders ``{symbol}``, ``{symbol_lower}``, ``{date}``, ``{yyyymmdd}``; globs allowed).
    """

    # the field's own default, not the resource's: a run configuring only e.g. ``seed`` keeps it
    kind: Literal["synthetic", "file", "ccxt"] = get("ATRA_RAW_SOURCE")
    seed: int = 7
    signal_strength: float = 1.0
    """Synthetic: the designed order-flow signal times this (0: a market without it)."""
    interval_ms: int = 1000
    file_format: Literal["atra", "tardis", "binance"] = "atra"
    book_path: str = ""
    trades_path: str = ""
    market: Literal["spot", "usdm_futures", "coinm_futures"] = "spot"
    on_gap: Literal["drop", "error"] = "drop"
    expect_full_day: bool = True
    max_gap_s: float = 5.0
    trade_band_bps: float = 100.0
    plausibility: dict[str, dict[str, float]] = {}
    """Plausibility bounds (``max_trade_notional``, ``max_level_notional``, ``max_mid_jump_bps``)
    for every symbol under ``"*"`` and per symbol under its name; unset bounds keep the rules'
    defaults."""
    replace_source: bool = False
    """Let this run replace a partition stored from a different source (a synthetic run over an
    imported capture, say); without it such a partition is refused, naming both sources."""

    def spec(self) -> SourceSpec:
        """The plain description of the source that core reads (same field names)."""
        return SourceSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SourceSpec)})

    def check_params(self, symbol: str) -> dict:
        """Thresholds of the SQL checks for ``symbol``'s data from this source."""
        min_rows, max_rows = self.spec().row_count_bounds()
        return {"min_rows": min_rows, "max_rows": max_rows, "max_gap_s": self.max_gap_s,
                "edges": self.expect_full_day, "band_bps": self.trade_band_bps,
                **plausibility_params(self.plausibility, symbol)}
