"""Which stored partitions failed a blocking check: what a step must not read.

A blocking check stops downstream work. Within one run Dagster does that itself; across runs (a
later `atra run`, a schedule, a Materialize in the UI) the step that reads a partition asks this
module, from the outcomes each partitioned asset keeps in ``asset_check_log``. Which checks block
is read from the checks' own registries (:data:`~atra_pipeline.core.quality.rules.SQL_CHECKS`, the
feature rules of :data:`~atra_pipeline.core.features.checks.FEATURE_CHECKS`, all blocking).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pandas as pd

from atra_pipeline.core.features.checks import FEATURE_CHECKS
from atra_pipeline.core.quality.rules import SQL_CHECKS


def blocking_checks() -> pd.DataFrame:
    """``asset, check_name`` of every blocking check of a partitioned asset."""
    rows = [(c.asset, c.name) for c in SQL_CHECKS if c.blocking] + [("features", name) for name in FEATURE_CHECKS]
    return pd.DataFrame(rows, columns=["asset", "check_name"])


def failed_blocking_checks(conn: duckdb.DuckDBPyConnection, reads: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The blocking checks that failed, in their latest evaluation, on the partitions a step reads.

    ``reads``: asset -> partition keys ``date|symbol``. Returns ``asset, check_name, partition,
    evaluated_at`` (empty: nothing read failed; a partition never checked is not a failure).
    """
    wanted = pd.DataFrame([(asset, key) for asset, keys in reads.items() for key in keys],
                          columns=["asset", "partition"])
    if wanted.empty:
        return pd.DataFrame(columns=["asset", "check_name", "partition", "evaluated_at"])
    blocking = blocking_checks()  # noqa: F841 (read by name in the SQL below)
    return conn.execute("""
        SELECT l.asset, l.check_name, strftime(l.day, '%Y-%m-%d') || '|' || l.symbol AS partition, l.evaluated_at
        FROM asset_check_log AS l
        JOIN blocking USING (asset, check_name)
        JOIN wanted AS w ON w.asset = l.asset AND w.partition = strftime(l.day, '%Y-%m-%d') || '|' || l.symbol
        WHERE NOT l.passed
        ORDER BY l.asset, partition, l.check_name
    """).fetchdf()


def describe(failures: pd.DataFrame) -> str:
    """One line per failed check: ``asset.check on partition``."""
    return "; ".join(f"{r.asset}.{r.check_name} on {r.partition}" for r in failures.itertuples())


def leave_out_failed(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame, assets: Sequence[str]
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame``'s rows (``ts``, ``symbol``) whose partition failed no blocking check of ``assets``,
    and the failures that left the others out (:func:`failed_blocking_checks`)."""
    partition = frame["ts"].dt.strftime("%Y-%m-%d") + "|" + frame["symbol"]
    failed = failed_blocking_checks(conn, {asset: partition.unique() for asset in assets})
    return (frame[~partition.isin(failed["partition"])] if not failed.empty else frame), failed
