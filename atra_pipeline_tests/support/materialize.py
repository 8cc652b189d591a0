"""Materialise the raw stage in-process against a temporary DuckDB file."""

from __future__ import annotations

import dagster as dg
import duckdb

from atra_pipeline.defs import raw
from atra_pipeline.defs.common.partitions import partition_key
from atra_pipeline.defs.common.resources import AtraDuckDB, RawSourceResource


def materialize_raw(db_path, date: str, symbol: str, source: RawSourceResource | None = None,
                    selection=None, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*raw.assets, *raw.asset_checks],
        selection=selection,
        partition_key=partition_key(date, symbol),
        resources={"duckdb": AtraDuckDB(database=str(db_path)), "raw_source": source or RawSourceResource()},
        instance=instance,
        raise_on_error=False,
    )


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    """The run's (one) materialization of ``asset``."""
    found = [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    assert len(found) == 1, f"{len(found)} materializations of {asset}"
    return found[0]


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """``{"asset.check": passed}`` for every check the run evaluated."""
    return {f"{e.asset_key.to_user_string()}.{e.check_name}": e.passed
            for e in result.get_asset_check_evaluations()}


def count_rows(db_path, table: str, symbol: str | None = None) -> int:
    with duckdb.connect(str(db_path), read_only=True) as conn:
        where = f" WHERE symbol = '{symbol}'" if symbol else ""
        return conn.execute(f"SELECT count(*) FROM {table}{where}").fetchall()[0][0]
