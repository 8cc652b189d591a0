"""The Great Expectations suites through Dagster: warnings that name the shifted columns and
never fail the run, on the raw book against its history and on features against the model's
training partitions."""

from __future__ import annotations

import dagster as dg
import duckdb

from atra_pipeline.core.features.build import ensure_features_table
from atra_pipeline.core.quality.expectations import BOOK_HISTORY
from atra_pipeline.core.storage.database import prepare
from atra_pipeline.defs.common.partitions import partition_key
from atra_pipeline.defs.common.resources import AtraDuckDB, RawSourceResource
from atra_pipeline.defs.features.drift import features_drift
from atra_pipeline_tests.conftest import make_book, make_trades
from atra_pipeline_tests.core.quality.test_expectations import _features_day, _register
from atra_pipeline_tests.support.materialize import check_results, materialize_raw

BOOK_CHECK = f"{BOOK_HISTORY.asset}.{BOOK_HISTORY.check}"


def _source(tmp_path, date: str, depth: float = 1.0) -> RawSourceResource:
    """An hour of a constant book (one snapshot every 10 s) with sizes x ``depth``, and its trades."""
    book = make_book(360, start=date, step_s=10.0)
    book[[c for c in book.columns if "_sz_" in c]] *= depth
    book.to_parquet(tmp_path / f"book_{date}.parquet")
    make_trades(book).to_csv(tmp_path / f"trades_{date}.csv", index=False)
    return RawSourceResource(kind="file", file_format="atra", expect_full_day=False,
                             book_path=str(tmp_path / "book_{date}.parquet"),
                             trades_path=str(tmp_path / "trades_{date}.csv"))


def _evaluation(result, key: str):
    [found] = [e for e in result.get_asset_check_evaluations()
               if f"{e.asset_key.to_user_string()}.{e.check_name}" == key]
    return found


def test_the_book_check_warns_on_a_shifted_day_and_passes_an_unshifted_one(tmp_path):
    db = tmp_path / "atra.duckdb"
    first = materialize_raw(db, "2024-08-07", "BTCUSDT", _source(tmp_path, "2024-08-07"))
    assert first.success and "no history yet" in _evaluation(first, BOOK_CHECK).description
    deeper = materialize_raw(db, "2024-08-08", "BTCUSDT", _source(tmp_path, "2024-08-08", depth=3.0))
    assert deeper.success  # a warning: the partition is written and the run succeeds
    found = _evaluation(deeper, BOOK_CHECK)
    assert not found.passed and found.severity == dg.AssetCheckSeverity.WARN
    # depth5 was 2 x (1 + ... + 5) = 30 every minute of the history, so its band is [30, 30]
    assert "depth5 q0.1 90 outside [30, 30]" in found.description and found.metadata["shifted"].value == "depth5"
    same = materialize_raw(db, "2024-08-08", "BTCUSDT", _source(tmp_path, "2024-08-08"))
    assert check_results(same)[BOOK_CHECK] is True


def test_the_drift_check_names_the_drifted_feature(tmp_path):
    db = tmp_path / "atra.duckdb"
    with duckdb.connect(str(db)) as conn:
        prepare(conn)
        ensure_features_table(conn)
        for i, day in enumerate(("2024-08-05", "2024-08-06", "2024-08-07")):
            _features_day(conn, day, seed=i)
        _features_day(conn, "2024-08-08", shift=1.5, seed=10)
        _register(conn, "m1", ["2024-08-05|BTCUSDT", "2024-08-06|BTCUSDT", "2024-08-07|BTCUSDT"])
    # the check's own function on the stored partition (the main job runs it after features, where
    # test_readme's `atra run` sees it pass with no model yet)
    with dg.build_op_context(partition_key=partition_key("2024-08-08", "BTCUSDT"),
                             resources={"duckdb": AtraDuckDB(database=str(db))}) as context:
        found = features_drift(context)
    assert not found.passed and found.severity == dg.AssetCheckSeverity.WARN
    assert found.metadata["shifted"].value == "ofi_norm_1m" and "ofi_norm_1m q0.5" in found.description
