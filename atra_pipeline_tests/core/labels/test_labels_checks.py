"""The labels table's SQL checks: each rule flags the rows that break it, and only those."""

from __future__ import annotations

import pandas as pd
import pytest

from atra_pipeline.core.labels.partition import LABEL_COLUMNS
from atra_pipeline.core.quality.rules import run_asset_checks
from atra_pipeline.core.storage.database import replace_partition
from atra_pipeline_tests.conftest import DAY


def good_rows(n: int = 20) -> pd.DataFrame:
    ts = pd.date_range(DAY, periods=n, freq="10min").as_unit("us")
    return pd.DataFrame({
        "ts": ts, "symbol": "BTCUSDT", "side": [1, -1] * (n // 2), "t1": ts + pd.Timedelta(minutes=30),
        "ret": 0.001, "label": [1, 0] * (n // 2), "outcome": 0, "barrier": "vertical", "target": 0.005,
        "uniqueness": 0.5, "weight": 1.0,
    })[LABEL_COLUMNS]


def outcomes(conn, window, rows) -> dict:
    replace_partition(conn, "labels", rows, LABEL_COLUMNS, window)
    return {o.check.name: o for o in run_asset_checks(conn, "labels", window, {"max_holding_s": 3600})}


def test_good_rows_pass(conn, window):
    assert all(o.passed for o in outcomes(conn, window, good_rows()).values())


@pytest.mark.parametrize("check, column, value", [
    ("t1_not_before_event", "t1", pd.Timestamp(DAY) - pd.Timedelta(seconds=1)),
    ("holding_within_max", "t1", pd.Timestamp(DAY) + pd.Timedelta(hours=1, seconds=1)),
    ("values_in_allowed_sets", "label", -1),
    ("values_in_allowed_sets", "side", 0),
    ("values_in_allowed_sets", "outcome", 1),  # a take-profit outcome on a vertical barrier
    ("weights_finite_positive", "weight", 0.0),
    ("weights_finite_positive", "weight", -1.0),
    ("weights_finite_positive", "uniqueness", float("inf")),
])
def test_each_rule_flags_the_row_that_breaks_it(conn, window, check, column, value):
    rows = good_rows()
    rows.loc[0, column] = value
    found = outcomes(conn, window, rows)
    assert not found[check].passed and found[check].n_offending == 1
    assert [name for name, o in found.items() if not o.passed] == [check]


def test_a_rare_class_warns_without_blocking(conn, window):
    rows = good_rows(40)
    rows["label"] = 1
    rows.loc[0, "label"] = 0  # 1 in 40 = 2.5% < 5%
    found = outcomes(conn, window, rows)
    assert not found["class_share_at_least"].passed and not found["class_share_at_least"].check.blocking
    assert found["class_share_at_least"].sample["label"].tolist() == [0]
