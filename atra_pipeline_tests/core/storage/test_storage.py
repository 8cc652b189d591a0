"""Schema migrations and transactional, idempotent partition writes."""

from __future__ import annotations

import pandas as pd
import pytest

from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, migrate, migrations, replace_partition
from atra_pipeline_tests.conftest import make_book, make_trades


def _count(conn, table, symbol=None):
    where = f" WHERE symbol = '{symbol}'" if symbol else ""
    return conn.execute(f"SELECT count(*) FROM {table}{where}").fetchall()[0][0]


def test_migrate_is_recorded_and_rerunning_is_harmless(conn):
    versions = [v for v, _ in migrations()]
    recorded = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
    assert recorded == versions
    assert migrate(conn) == []
    assert _count(conn, "schema_version") == len(versions)


def test_replace_partition_twice_does_not_duplicate(conn, window):
    book = make_book(120)
    first = replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
    second = replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
    assert first == {"deleted": 0, "inserted": 120}
    assert second == {"deleted": 120, "inserted": 120}
    assert _count(conn, "raw_l2_snapshots") == 120


def test_replace_partition_touches_only_its_window(conn, window):
    replace_partition(conn, "raw_l2_snapshots", make_book(10), L2_COLUMNS, window)
    next_day = PartitionWindow.for_day("BTCUSDT", "2024-08-09")
    replace_partition(conn, "raw_l2_snapshots", make_book(7, start="2024-08-09"), L2_COLUMNS, next_day)
    other_symbol = PartitionWindow.for_day("ETHUSDT", "2024-08-08")
    replace_partition(conn, "raw_l2_snapshots", make_book(5, symbol="ETHUSDT"), L2_COLUMNS, other_symbol)
    replace_partition(conn, "raw_l2_snapshots", make_book(3), L2_COLUMNS, window)
    assert _count(conn, "raw_l2_snapshots", "BTCUSDT") == 3 + 7
    assert _count(conn, "raw_l2_snapshots", "ETHUSDT") == 5


def test_failed_insert_keeps_previous_rows(conn, window):
    trades = make_trades(make_book(100))
    replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)
    bad = trades.copy()
    bad.loc[bad.index[-1], "side"] = "sideways"  # violates the table's CHECK constraint mid-insert
    with pytest.raises(Exception, match="(?i)constraint"):
        replace_partition(conn, "raw_trades", bad, TRADE_COLUMNS, window)
    kept = conn.execute("SELECT trade_id, side FROM raw_trades ORDER BY ts").fetchdf()
    assert kept["trade_id"].tolist() == trades["trade_id"].tolist()
    assert set(kept["side"]) == {"buy", "sell"}


def test_rows_outside_the_window_are_refused_and_nothing_written(conn, window):
    replace_partition(conn, "raw_l2_snapshots", make_book(10), L2_COLUMNS, window)
    stray = pd.concat([make_book(5), make_book(1, start="2024-08-09 00:00:00")])
    with pytest.raises(ValueError, match="1 rows .* outside partition BTCUSDT"):
        replace_partition(conn, "raw_l2_snapshots", stray, L2_COLUMNS, window)
    assert _count(conn, "raw_l2_snapshots") == 10


def test_a_nanosecond_that_rounds_into_the_next_day_is_refused(conn, window):
    book = make_book(2)
    book["ts"] = pd.to_datetime(["2024-08-08 12:00:00", "2024-08-08 23:59:59.9999996"], format="ISO8601").as_unit("ns")
    with pytest.raises(ValueError, match="outside partition"):
        replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
    assert _count(conn, "raw_l2_snapshots") == 0
