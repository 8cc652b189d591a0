"""Great Expectations (1.x) validating in DuckDB, on a connection the caller already holds.

Great Expectations reads SQL databases through SQLAlchemy; the ``duckdb-engine`` dialect speaks
DuckDB. The suite runs on the step's own connection (``AtraDuckDB.partition_connection``), so it
sees what the step sees (the database file, or the partition files' views of the scale-out path),
takes no second lock on the file and holds none after the step. Nothing is copied to pandas:
Great Expectations sends its metric queries (quantiles, counts) to DuckDB.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import duckdb

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class _Borrowed:
    """A DB-API view of a borrowed DuckDB connection for SQLAlchemy: reads only, closes nothing.

    Why the transaction calls do nothing: duckdb-engine's cursor is the connection itself, and
    Great Expectations fetches a metric's rows after handing its SQLAlchemy connection back,
    whose rollback would discard the pending result (its bundled metrics then fail with an
    IndexError). The suite only reads, so there is nothing to commit or roll back.
    """

    autocommit = None
    closed = False

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self._conn = conn
        self.notices: list[str] = []

    def cursor(self):
        from duckdb_engine import CursorWrapper

        return CursorWrapper(self._conn, self)

    def begin(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass  # the caller's connection: the caller closes it

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def validate(conn: duckdb.DuckDBPyConnection, query: str, name: str, expectations: list):
    """Validate the suite ``name`` of ``expectations`` (Great Expectations expectation objects) on
    the rows of ``query`` (a ``SELECT``) in ``conn``; return Great Expectations' validation result."""
    import great_expectations as gx
    from sqlalchemy.pool import StaticPool

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    # one borrowed connection for the engine's life: StaticPool never opens another
    source = context.data_sources.add_sql("atra_duckdb", connection_string="duckdb:///:memory:",
                                          kwargs={"creator": lambda: _Borrowed(conn), "poolclass": StaticPool})
    batch = source.add_query_asset("partition", query=query).add_batch_definition_whole_table("all").get_batch()
    suite = gx.ExpectationSuite(name=name)  # after the context: a suite is stored by the current one
    for expectation in expectations:
        suite.add_expectation(expectation)
    try:
        return batch.validate(suite)
    finally:
        # Great Expectations leaves its last query's rows partly read, and DuckDB refuses some
        # work on a connection with an unfinished result: hand the connection back clear
        conn.abort()
