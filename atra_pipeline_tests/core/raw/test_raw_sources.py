"""The source seam refuses staged rows that cannot stand for a partition, before any write."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.raw.sources import SourceSpec, _synthetic_day, resolve_paths, stage_partition
from atra_pipeline.core.raw.synthetic import generate_market_day, symbol_spec
from atra_pipeline_tests.conftest import make_book, make_trades


def _spec(tmp_path, **kw) -> SourceSpec:
    return SourceSpec(kind="file", file_format="atra", book_path=str(tmp_path / "book_{symbol}.csv"),
                      trades_path=str(tmp_path / "trades_{symbol}*.csv"), **kw)


def test_no_rows_for_the_partition_is_an_error_not_a_silent_delete(conn, tmp_path, window):
    make_book(10, symbol="ETHUSDT").to_csv(tmp_path / "book_BTCUSDT.csv", index=False)  # wrong symbol inside
    with pytest.raises(DataError,
                       match=r"no raw_l2_snapshots rows for partition BTCUSDT 2024-08-08.*rows_other_symbols.: 10"):
        stage_partition(conn, _spec(tmp_path), "raw_l2_snapshots", window)


def test_rows_of_two_exchanges_are_refused(conn, tmp_path, window):
    book = pd.concat([make_book(10), make_book(10, start="2024-08-08 01:00").assign(exchange="okx")])
    book.to_csv(tmp_path / "book_BTCUSDT.csv", index=False)
    with pytest.raises(DataError, match=r"column 'exchange': rows of several exchanges \['okx', 'test'\]"):
        stage_partition(conn, _spec(tmp_path), "raw_l2_snapshots", window)


def test_overlapping_trade_files_are_refused(conn, tmp_path, window):
    from atra_pipeline.core.raw.partition import PartitionRefused, stage_raw, write_raw

    book = make_book(100)
    book.to_csv(tmp_path / "book_BTCUSDT.csv", index=False)
    trades = make_trades(book)
    trades.iloc[:12].to_csv(tmp_path / "trades_BTCUSDT_a.csv", index=False)
    trades.iloc[8:].to_csv(tmp_path / "trades_BTCUSDT_b.csv", index=False)
    staged = stage_raw(conn, _spec(tmp_path), window)
    with pytest.raises(PartitionRefused, match=r"trade_id_unique: 4 offending rows") as refused:
        write_raw(conn, staged, staged.outcomes(conn, {"edges": False}))
    assert [o.check.name for o in refused.value.failed] == ["trade_id_unique"]
    assert conn.execute("SELECT count(*) FROM raw_trades").fetchall()[0][0] == 0


def test_path_template_placeholders_and_missing_files(tmp_path, window):
    (tmp_path / "btcusdt_20240808.gz").write_bytes(b"")
    found = resolve_paths(str(tmp_path / "{symbol_lower}_{yyyymmdd}.gz"), window)
    assert found == [tmp_path / "btcusdt_20240808.gz"]
    with pytest.raises(DataError, match="no file matches"):
        resolve_paths(str(tmp_path / "{symbol}_{date}.csv"), window)


def test_signal_strength_scales_the_designed_signal_and_nothing_else():
    off, _ = _synthetic_day("SOLUSDT", "2024-08-08", 7, 60_000, 0.0)
    without, _ = generate_market_day("SOLUSDT", "2024-08-08", seed=7, interval_ms=60_000,
                                     spec=replace(symbol_spec("SOLUSDT"), signal_snr=0.0))
    pd.testing.assert_frame_equal(off, without)  # strength 0 is the market without the signal
    on, _ = _synthetic_day("SOLUSDT", "2024-08-08", 7, 60_000, 1.0)
    default, _ = generate_market_day("SOLUSDT", "2024-08-08", seed=7, interval_ms=60_000)
    pd.testing.assert_frame_equal(on, default)  # strength 1 is today's market
    assert not off["bid_px_0"].equals(on["bid_px_0"])  # the drift moves the prices, the noise is the same
    with pytest.raises(ValueError, match="signal_strength=-1"):
        SourceSpec(signal_strength=-1)
