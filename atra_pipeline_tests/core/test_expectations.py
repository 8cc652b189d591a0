"""The Great Expectations suites catch the column-wise problems and name the rows."""

from __future__ import annotations

import numpy as np
import pytest

from atra_pipeline.core.expectations import validate_frame
from atra_pipeline_tests.conftest import make_book, make_trades


def test_clean_book_and_trades_pass():
    book = make_book(200)
    assert validate_frame("raw_l2_snapshots", book, 200, 200)["success"]
    assert validate_frame("raw_trades", make_trades(book))["success"]


def test_book_problems_are_named_with_rows():
    book = make_book(100)
    book.loc[7, "ask_sz_2"] = -1.0
    book.loc[9, "ts"] = book.loc[8, "ts"]
    book.loc[12, "ask_px_0"] = book.loc[12, "bid_px_0"]
    summary = validate_frame("raw_l2_snapshots", book, 100, 100)
    assert not summary["success"]
    by_kind = {(f["expectation"], f["column"]): f for f in summary["failed"]}
    assert by_kind[("expect_column_values_to_be_between", "ask_sz_2")]["first_rows"] == [7]
    assert ("expect_column_values_to_be_unique", "ts") in by_kind
    assert by_kind[("expect_column_pair_values_a_to_be_greater_than_b", "ask_px_0")]["unexpected_count"] == 1


@pytest.mark.parametrize("column, value, expectation", [
    ("side", "hold", "expect_column_values_to_be_in_set"),
    ("amount", 0.0, "expect_column_values_to_be_between"),
    ("price", np.nan, "expect_column_values_to_not_be_null"),
])
def test_trade_problems(column, value, expectation):
    trades = make_trades(make_book(100))
    trades.loc[4, column] = value
    summary = validate_frame("raw_trades", trades)
    assert [(f["expectation"], f["column"]) for f in summary["failed"]] == [(expectation, column)]
    assert summary["failed"][0]["first_rows"] == [4]


def test_row_count_bounds_are_enforced():
    summary = validate_frame("raw_l2_snapshots", make_book(10), 86_400, 86_400)
    assert [f["expectation"] for f in summary["failed"]] == ["expect_table_row_count_to_be_between"]
