"""The Great Expectations suites: quantile bands computed by hand, validated in DuckDB on the
caller's connection, the book's distributions against its history and a partition's features
against the model's training partitions, each failing on a shifted day and passing on an
unshifted one."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.features.build import ensure_features_table
from atra_pipeline.core.quality import expectations
from atra_pipeline.core.quality.expectations import (
    BOOK_HISTORY,
    FEATURE_DRIFT,
    book_minutes,
    judge,
    judge_book_history,
    judge_feature_drift,
    quantile_bands,
)
from atra_pipeline.core.raw.schema import L2_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, prepare

DAY = pd.Timestamp("2024-08-08")


@pytest.fixture
def conn():
    with duckdb.connect(":memory:") as c:
        prepare(c)
        yield c


def _values(conn, name: str, days: dict[str, list[float]]) -> str:
    """A temp view ``name`` of (day, x) rows; returns its SELECT."""
    rows = pd.DataFrame([(pd.Timestamp(d).date(), float(v)) for d, vs in days.items() for v in vs],
                        columns=["day", "x"])
    conn.register(f"{name}_rows", rows)
    conn.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {name}_rows")
    return f"SELECT day, x FROM {name}"


def test_quantile_bands_by_hand(conn):
    # day 1: 1..100, day 2: 11..110. Daily 10/50/90% quantiles (percentile_disc): 10/50/90 and
    # 20/60/100. Pooled, 200 values: 1..10 once, 11..100 twice, 101..110 once: the 20th smallest
    # is 15, the 180th 95, so the band widens by 0.25 x (95 - 15) = 20 on each side.
    reference = _values(conn, "ref", {"2024-08-06": range(1, 101), "2024-08-07": range(11, 111)})
    bands, days = quantile_bands(conn, reference, ["x"], BOOK_HISTORY)
    assert days == 2
    assert bands["x"] == [(-10.0, 40.0), (30.0, 80.0), (70.0, 120.0)]


def test_a_day_with_too_few_values_widens_no_band(conn):
    reference = _values(conn, "ref", {"2024-08-06": range(1, 101), "2024-08-07": [1000.0] * 29})
    bands, days = quantile_bands(conn, reference, ["x"], BOOK_HISTORY)
    assert days == 1 and bands["x"][2][1] < 1000  # 29 values: under min_values, left out of the band


def test_judge_passes_inside_the_bands_and_names_the_shifted_quantiles(conn):
    reference = _values(conn, "ref", {"2024-08-06": range(1, 101), "2024-08-07": range(11, 111)})
    same = judge(conn, BOOK_HISTORY, _values(conn, "same", {"2024-08-08": range(6, 106)}), reference, ["x"], "history")
    assert same.passed and same.shifted == [] and list(same.bands["observed"]) == [15.0, 55.0, 95.0]
    # 31..130: quantiles 40, 80, 120, on the bands' upper edges (inclusive); one more is outside
    edge = judge(conn, BOOK_HISTORY, _values(conn, "edge", {"2024-08-08": range(31, 131)}), reference, ["x"], "history")
    assert edge.passed and list(edge.bands["observed"]) == [40.0, 80.0, 120.0]
    moved = judge(conn, BOOK_HISTORY, _values(conn, "moved", {"2024-08-08": range(32, 132)}), reference, ["x"],
                  "history")
    assert not moved.passed and moved.shifted == ["x"] and not moved.bands["inside"].any()
    assert "x q0.1 41 outside [-10, 40]; x q0.5 81 outside [30, 80]" in moved.message()
    assert "against history (2 days)" in moved.message()


def test_great_expectations_runs_in_duckdb_on_the_callers_connection(conn, monkeypatch):
    # a temporary view exists in this connection only: validating it proves GE queried this
    # connection, in DuckDB, and the connection is still the caller's afterwards
    from atra_pipeline.core.quality import ge_duckdb

    seen = []
    real = ge_duckdb.validate
    monkeypatch.setattr(ge_duckdb, "validate", lambda *a: seen.append(a) or real(*a))
    reference = _values(conn, "ref", {"2024-08-07": range(1, 101)})
    outcome = judge(conn, BOOK_HISTORY, _values(conn, "part", {"2024-08-08": range(1, 101)}), reference, ["x"], "h")
    assert outcome.passed and len(seen) == 1
    assert {type(e).__name__ for e in seen[0][3]} == {expectations.EXPECTATION}
    assert conn.execute("SELECT count(*) FROM part").fetchall() == [(100,)]


# -- the book against its history ------------------------------------------------------------


def _book_day(day: str, spread_bps: float = 2.0, depth_scale: float = 1.0, vol_bps: float = 5.0,
              seed: int = 0) -> pd.DataFrame:
    """One snapshot a minute: a mid walking with ``vol_bps`` 1-minute returns, the spread drawn
    around ``spread_bps``, five levels a side of size ``depth_scale`` x 1..5."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(day, periods=1440, freq="1min").as_unit("us")
    mid = 100.0 * np.exp(np.cumsum(rng.normal(0, vol_bps / 1e4, len(ts))))
    half = mid * spread_bps * rng.uniform(0.5, 1.5, len(ts)) / 2e4
    frame = pd.DataFrame({"ts": ts, "symbol": "BTCUSDT", "exchange": "test"})
    for i in range(10):
        present = i < 5
        frame[f"bid_px_{i}"] = mid - half - 0.01 * i if present else np.nan
        frame[f"ask_px_{i}"] = mid + half + 0.01 * i if present else np.nan
        size = depth_scale * (i + 1) * rng.uniform(0.5, 1.5, len(ts))
        frame[f"bid_sz_{i}"] = size if present else np.nan
        frame[f"ask_sz_{i}"] = size if present else np.nan
    return frame[L2_COLUMNS]


def _store(conn, frame: pd.DataFrame) -> None:
    conn.register("incoming", frame)
    conn.execute("INSERT INTO raw_l2_snapshots SELECT * FROM incoming")
    conn.unregister("incoming")


def test_book_minutes_by_hand(conn):
    # two snapshots in minute 0, one in minute 1, none in minute 2, one in minute 3
    book = pd.DataFrame({"ts": pd.to_datetime(["2024-08-08 00:00:10", "2024-08-08 00:00:50", "2024-08-08 00:01:30",
                                               "2024-08-08 00:03:00"]).as_unit("us"),
                         "symbol": "BTCUSDT", "exchange": "test"})
    for c in L2_COLUMNS[3:]:
        book[c] = np.nan
    book["bid_px_0"], book["ask_px_0"] = [99.0, 99.9, 100.9, 99.9], [101.0, 100.1, 101.1, 100.1]
    book["bid_sz_0"], book["ask_sz_0"] = [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]
    book["bid_sz_1"], book["bid_px_1"] = [5.0, 5.0, 5.0, 5.0], [98.0, 99.8, 100.8, 99.8]
    _store(conn, book)
    rows = conn.execute(book_minutes("BTCUSDT", DAY, DAY + pd.Timedelta(days=1)) + " ORDER BY minute").fetchdf()
    # the minute's last snapshot: a 0.2 spread on mids 100, 101, 100
    assert rows["spread_bps"].tolist() == pytest.approx([20.0, 1e4 * 0.2 / 101, 20.0])
    assert list(rows["depth5"]) == [9.0, 11.0, 13.0]  # 2 + 2 + 5, 3 + 3 + 5, 4 + 4 + 5
    assert rows["ret_1m_bps"].iloc[1] == pytest.approx(1e4 * np.log(101 / 100))
    assert np.isnan(rows["ret_1m_bps"].iloc[0]) and np.isnan(rows["ret_1m_bps"].iloc[2])  # minute 2 has no snapshot


def test_first_days_pass_saying_there_is_no_history(conn):
    _store(conn, _book_day("2024-08-08"))
    outcome = judge_book_history(conn, PartitionWindow.for_day("BTCUSDT", DAY))
    assert outcome.passed and outcome.reason.startswith("no history yet") and outcome.reference_days == 0


@pytest.mark.parametrize("shift, column", [
    ({"spread_bps": 6.0}, "spread_bps"),      # the spread tripled
    ({"depth_scale": 0.3}, "depth5"),          # the book a third as deep
    ({"vol_bps": 15.0}, "ret_1m_bps"),         # returns three times as volatile
])
def test_each_book_distribution_fails_on_its_shift_and_passes_unshifted(conn, shift, column):
    for i, day in enumerate(("2024-08-05", "2024-08-06", "2024-08-07")):
        _store(conn, _book_day(day, seed=i))
    window = PartitionWindow.for_day("BTCUSDT", DAY)
    _store(conn, _book_day("2024-08-08", seed=10))
    same = judge_book_history(conn, window)
    assert same.passed and same.reference_days == 3 and set(same.bands["column"]) == set(expectations.BOOK_COLUMNS)
    conn.execute("DELETE FROM raw_l2_snapshots WHERE ts >= '2024-08-08'")
    _store(conn, _book_day("2024-08-08", seed=10, **shift))
    moved = judge_book_history(conn, window)
    assert not moved.passed and moved.shifted == [column], moved.message()
    assert column in moved.message() and "BTCUSDT's history 2024-08-01 to 2024-08-07 (3 days)" in moved.message()


# -- features against the model's training partitions ---------------------------------------


def _features_day(conn, day: str, shift: float = 0.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(day, periods=1440, freq="1min").as_unit("us")
    rows = pd.DataFrame({"ts": ts, "symbol": "BTCUSDT", "ofi_norm_1m": rng.normal(shift, 1.0, len(ts)),
                         "spread_bps": rng.uniform(1.0, 3.0, len(ts)), "hour_of_day": ts.hour.astype(float)})
    rows.loc[5, "ofi_norm_1m"] = np.nan  # a missing value is not a value
    conn.register("incoming", rows)
    conn.execute("INSERT INTO features BY NAME SELECT * FROM incoming")
    conn.unregister("incoming")


def _register(conn, model_id: str, partitions: list[str], status: str = "candidate") -> None:
    conn.execute("INSERT INTO model_registry (model_id, created_at, train_start, train_end, partitions, params, "
                 "features, metrics, model_text, status) VALUES (?, now()::TIMESTAMP, '2024-08-01', '2024-08-07', ?, "
                 "'{}', ?, '{}', '', ?)",
                 [model_id, json.dumps(partitions), json.dumps(["ofi_norm_1m", "spread_bps", "hour_of_day"]), status])


@pytest.fixture
def trained(conn):
    """Features of 3 training days and an approved model trained on them (and on ETHUSDT)."""
    ensure_features_table(conn)
    for i, day in enumerate(("2024-08-05", "2024-08-06", "2024-08-07")):
        _features_day(conn, day, seed=i)
    _register(conn, "m1", ["2024-08-05|BTCUSDT", "2024-08-06|BTCUSDT", "2024-08-07|BTCUSDT", "2024-08-08|BTCUSDT",
                           "2024-08-07|ETHUSDT"], status="approved")
    return conn


def test_no_model_yet_passes_saying_so(conn):
    ensure_features_table(conn)
    _features_day(conn, "2024-08-08")
    outcome = judge_feature_drift(conn, PartitionWindow.for_day("BTCUSDT", DAY))
    assert outcome.passed and outcome.reason.startswith("no model yet")


def test_an_unshifted_day_passes_against_the_training_partitions(trained):
    _features_day(trained, "2024-08-08", seed=10)
    outcome = judge_feature_drift(trained, PartitionWindow.for_day("BTCUSDT", DAY))
    assert outcome.passed, outcome.message()
    # the calendar is no drift, and this date, though trained on, is not its own reference
    assert set(outcome.bands["column"]) == {"ofi_norm_1m", "spread_bps"} and outcome.reference_days == 3


def test_a_shifted_feature_is_named_with_its_figures(trained):
    _features_day(trained, "2024-08-08", shift=1.5, seed=10)  # ofi_norm_1m's centre moved by 1.5 sd
    outcome = judge_feature_drift(trained, PartitionWindow.for_day("BTCUSDT", DAY))
    assert not outcome.passed and outcome.shifted == ["ofi_norm_1m"]
    assert "ofi_norm_1m q0.5" in outcome.message() and "model m1's training partitions of BTCUSDT" in outcome.message()


def test_the_approved_model_is_the_reference_and_another_symbol_has_none(trained):
    _register(trained, "m2", ["2024-08-07|ETHUSDT"])  # newer, but a candidate: the approved m1 scores
    _features_day(trained, "2024-08-08", seed=10)
    assert "model m1's" in judge_feature_drift(trained, PartitionWindow.for_day("BTCUSDT", DAY)).message()
    other = judge_feature_drift(trained, PartitionWindow.for_day("SOLUSDT", DAY))
    assert other.passed and "no partition of SOLUSDT" in other.reason


def test_suites_are_declared_once_for_checks_and_readme():
    from atra_pipeline.docs import checks_section

    table = checks_section()
    for suite in (BOOK_HISTORY, FEATURE_DRIFT):
        assert f"`{suite.check}` | warning | {suite.description}" in table
        assert "tolerance=0.25" in table and "history_days=7" in table
