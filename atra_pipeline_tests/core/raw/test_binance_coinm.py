"""COIN-M futures captures: contracts converted to base units, the venue id, and a capture of one
market declared as another refused at its first telling line.

The hand-written captures follow the message shapes of Binance's COIN-M docs: the diff-depth stream
(``depthUpdate`` with ``T``, ``ps``, ``pu``), ``aggTrade`` and the REST ``/dapi/v1/depth`` snapshot
(``symbol``, ``pair``, ``E``, ``T``); the ``trade`` stream in the futures shape (``X``, no ``M``).
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.raw.binance_capture import (
    COINM_CONTRACT_SIZE_USD,
    DEFAULT_EXCHANGE,
    coinm_contract_size,
    contracts_to_base,
    read_binance_capture,
)
from atra_pipeline.core.raw.sources import SourceSpec, stage_partition
from atra_pipeline.core.storage.database import PartitionWindow

DAY = 1_723_075_200_000  # 2024-08-08 00:00:00 UTC in ms; every E below is DAY + offset


def at(ms: int) -> pd.Timestamp:
    return pd.Timestamp(DAY + ms, unit="ms")


def _levels(levels) -> list[list[str]]:
    return [[str(p), str(q)] for p, q in levels]


# --------------------------------------------------------------------------- COIN-M shapes


def cm_depth(e: int, first: int, last: int, prev: int, b=(), a=(), sym: str = "btcusd_perp") -> dict:
    pair = sym.upper().split("_")[0]
    return {"stream": f"{sym}@depth@100ms", "data": {
        "e": "depthUpdate", "E": DAY + e, "T": DAY + e - 16, "s": sym.upper(), "ps": pair,
        "U": first, "u": last, "pu": prev, "b": _levels(b), "a": _levels(a)}}


def cm_snapshot(last_id: int, bids, asks, sym: str = "BTCUSD_PERP") -> dict:
    return {"lastUpdateId": last_id, "symbol": sym, "pair": sym.split("_")[0], "E": DAY + 900, "T": DAY + 898,
            "bids": _levels(bids), "asks": _levels(asks)}


def cm_trade(t: int, trade_id: int, price, contracts, buyer_is_maker: bool, sym: str = "btcusd_perp") -> dict:
    return {"stream": f"{sym}@trade", "data": {
        "e": "trade", "E": DAY + t, "T": DAY + t, "s": sym.upper(), "t": trade_id, "p": str(price),
        "q": str(contracts), "X": "MARKET", "m": buyer_is_maker}}


def cm_agg_trade(t: int, agg_id: int, price, contracts, buyer_is_maker: bool, sym: str = "btcusd_perp") -> dict:
    return {"stream": f"{sym}@aggTrade", "data": {
        "e": "aggTrade", "E": DAY + t, "a": agg_id, "s": sym.upper(), "p": str(price), "q": str(contracts),
        "f": 10 * agg_id, "l": 10 * agg_id + 1, "T": DAY + t - 5, "m": buyer_is_maker}}


# --------------------------------------------------------------------------- spot and USD-M shapes


def spot_depth(e: int, first: int, last: int, b=(), a=()) -> dict:
    return {"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": DAY + e, "s": "BTCUSDT", "U": first, "u": last, "b": _levels(b), "a": _levels(a)}}


def spot_trade(t: int, trade_id: int, price, qty, buyer_is_maker: bool) -> dict:
    return {"stream": "btcusdt@trade", "data": {
        "e": "trade", "E": DAY + t, "s": "BTCUSDT", "t": trade_id, "p": str(price), "q": str(qty),
        "T": DAY + t, "m": buyer_is_maker, "M": True}}


def um_depth(e: int, first: int, last: int, prev: int, b=(), a=()) -> dict:
    return {"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": DAY + e, "T": DAY + e - 3, "s": "BTCUSDT", "U": first, "u": last, "pu": prev,
        "b": _levels(b), "a": _levels(a)}}


def bare_snapshot(last_id: int, bids, asks) -> dict:
    """Spot's /api/v3/depth: no symbol, no E/T."""
    return {"lastUpdateId": last_id, "bids": _levels(bids), "asks": _levels(asks)}


def um_snapshot(last_id: int, bids, asks) -> dict:
    """USD-M's /fapi/v1/depth: E and T, no symbol."""
    return {**bare_snapshot(last_id, bids, asks), "E": DAY + 900, "T": DAY + 898}


def write_capture(path: Path, messages) -> Path:
    """gzip text, one ``<local receive ns> <JSON>`` line per message, as the real capture."""
    with gzip.open(path, "wt") as fh:
        for i, msg in enumerate(messages):
            fh.write(f"{(DAY + 500 + i) * 1_000_000} {json.dumps(msg)}\n")
    return path


# --------------------------------------------------------------------------- the hand-computed case

BTC_BIDS = [(60000.0, 30), (50000.0, 8)]
BTC_ASKS = [(62500.0, 5), (80000.0, 40)]


def btc_capture(path: Path) -> Path:
    return write_capture(path, [
        cm_snapshot(100, BTC_BIDS, BTC_ASKS),
        cm_depth(1100, 95, 102, 90, b=[(60000.0, 12)]),                       # U <= 100 <= u: applied
        cm_trade(1500, 7, 60000.0, 3, True),
        cm_depth(2100, 103, 105, 102, a=[(62500.0, 0), (64000.0, 16)]),      # removes 62500, adds 64000
        cm_trade(2500, 8, 62500.0, 10, False),
        cm_depth(3100, 106, 106, 105),
    ])


def test_contracts_become_base_units_at_each_level_and_trade_price(tmp_path):
    res = read_binance_capture([btc_capture(tmp_path / "btcusd_perp.gz")], "BTCUSD_PERP", market="coinm_futures")
    book = res.book.set_index("ts")
    assert book.index.tolist() == [at(2000), at(3000)]
    # BTCUSD contracts are worth 100 USD: base = contracts x 100 / price, each at its own level's price.
    #   bid 60000 x 12 contracts -> 1200 / 60000 = 0.02 BTC   (12 after the update at E=1100, not 30)
    #   bid 50000 x  8 contracts ->  800 / 50000 = 0.016 BTC
    #   ask 62500 x  5 contracts ->  500 / 62500 = 0.008 BTC  (until E=2100 removes it)
    #   ask 80000 x 40 contracts -> 4000 / 80000 = 0.05 BTC
    #   ask 64000 x 16 contracts -> 1600 / 64000 = 0.025 BTC  (from E=2100)
    want = {at(2000): [60000.0, 0.02, 50000.0, 0.016, 62500.0, 0.008, 80000.0, 0.05],
            at(3000): [60000.0, 0.02, 50000.0, 0.016, 64000.0, 0.025, 80000.0, 0.05]}
    cols = ["bid_px_0", "bid_sz_0", "bid_px_1", "bid_sz_1", "ask_px_0", "ask_sz_0", "ask_px_1", "ask_sz_1"]
    for ts, row in want.items():
        np.testing.assert_allclose(book.loc[ts, cols].to_numpy(float), row, rtol=1e-12)
    assert book.bid_px_2.isna().all() and book.bid_sz_2.isna().all()  # a missing level stays NULL
    # Trades at the trade price: 3 x 100 / 60000 = 0.005 BTC (buyer maker: a sell); 10 x 100 / 62500 = 0.016 BTC.
    trades = res.trades
    assert trades.trade_id.tolist() == ["7", "8"] and trades.side.tolist() == ["sell", "buy"]
    np.testing.assert_allclose(trades.amount, [0.005, 0.016], rtol=1e-12)
    assert trades.price.tolist() == [60000.0, 62500.0]
    assert res.report["units"]["contract_size_usd"] == 100.0 and res.report["trade_stream"] == "trade"


def test_altcoin_contracts_are_ten_usd_and_agg_trades_are_read(tmp_path):
    path = write_capture(tmp_path / "ethusd_perp.gz", [
        cm_snapshot(50, [(2000.0, 300)], [(2500.0, 7)], sym="ETHUSD_PERP"),
        cm_depth(1100, 49, 51, 47, sym="ethusd_perp"),
        cm_agg_trade(1500, 42, 2500.0, 4, False, sym="ethusd_perp"),
        cm_depth(2100, 52, 52, 51, sym="ethusd_perp"),
    ])
    res = read_binance_capture([path], "ETHUSD_PERP", market="coinm_futures")
    row = res.book.iloc[0]
    # ETHUSD contracts are worth 10 USD: 300 x 10 / 2000 = 1.5 ETH; 7 x 10 / 2500 = 0.028 ETH.
    assert (row.bid_sz_0, row.ask_sz_0) == pytest.approx((1.5, 0.028), rel=1e-12)
    # the aggTrade (no @trade stream in this capture): id a=42, 4 x 10 / 2500 = 0.016 ETH, taker bought
    assert res.trades[["trade_id", "side"]].values.tolist() == [["42", "buy"]]
    assert res.trades.amount.iloc[0] == pytest.approx(0.016, rel=1e-12)
    assert res.report["trade_stream"] == "aggTrade"


def test_trade_stream_wins_over_agg_trade_so_no_fill_counts_twice(tmp_path):
    path = write_capture(tmp_path / "both.gz", [
        cm_snapshot(100, BTC_BIDS, BTC_ASKS), cm_depth(1100, 95, 102, 90),
        cm_agg_trade(1400, 3, 60000.0, 3, True),   # the same fill as trade 7, aggregated
        cm_trade(1500, 7, 60000.0, 3, True), cm_depth(2100, 103, 103, 102),
    ])
    res = read_binance_capture([path], "BTCUSD_PERP", market="coinm_futures")
    assert res.trades.trade_id.tolist() == ["7"]
    assert res.report["messages"]["ignored"]["aggTrade"] == 1


# --------------------------------------------------------------------------- contract sizes, venue id


def test_contract_size_table_and_override(tmp_path):
    assert coinm_contract_size("BTCUSD_PERP") == 100.0 and coinm_contract_size("btcusd_240927") == 100.0
    assert coinm_contract_size("ETHUSD_PERP") == 10.0 and set(COINM_CONTRACT_SIZE_USD.values()) == {100.0, 10.0}
    with pytest.raises(ValueError, match=r"'ABCUSD_PERP' unknown .*contract_size_usd"):
        coinm_contract_size("ABCUSD_PERP")
    with pytest.raises(ValueError, match=r"'BTCUSDT' is not a COIN-M contract symbol"):
        coinm_contract_size("BTCUSDT")
    # unknown before any file is opened: this path does not exist
    with pytest.raises(ValueError, match="ABCUSD_PERP"):
        read_binance_capture([tmp_path / "missing.gz"], "ABCUSD_PERP", market="coinm_futures")
    with pytest.raises(ValueError, match="contract_size_usd is for market 'coinm_futures'"):
        read_binance_capture([tmp_path / "missing.gz"], "BTCUSDT", contract_size_usd=100)
    # The override states a size the table lacks (or corrects it): 3 x 50 / 60000 = 0.0025.
    res = read_binance_capture([btc_capture(tmp_path / "cap.gz")], "BTCUSD_PERP", market="coinm_futures",
                               contract_size_usd=50)
    assert res.trades.amount.iloc[0] == pytest.approx(0.0025, rel=1e-12)
    with pytest.raises(ValueError, match="finite number of USD > 0"):
        coinm_contract_size("BTCUSD_PERP", override=float("nan"))


def test_coinm_rows_carry_the_binance_delivery_venue_id(tmp_path):
    assert DEFAULT_EXCHANGE == {"spot": "binance", "usdm_futures": "binance-futures",
                                "coinm_futures": "binance-delivery"}
    res = read_binance_capture([btc_capture(tmp_path / "cap.gz")], "BTCUSD_PERP", market="coinm_futures")
    assert set(res.book.exchange) == {"binance-delivery"} and set(res.trades.exchange) == {"binance-delivery"}
    assert set(res.book.symbol) == {"BTCUSD_PERP"} and res.report["exchange"] == "binance-delivery"


# --------------------------------------------------------------------------- market mismatches

SPOT = [bare_snapshot(100, [(99, 1)], [(101, 1)]), spot_depth(1100, 101, 102, b=[(99, 2)]),
        spot_trade(1500, 1, 100, 0.5, True), spot_depth(2100, 103, 104)]
USDM = [um_snapshot(100, [(99, 1)], [(101, 1)]), um_depth(1100, 95, 100, 94, b=[(99, 3)]),
        um_depth(2100, 104, 108, 100)]
COINM = [cm_snapshot(100, BTC_BIDS, BTC_ASKS), cm_depth(1100, 95, 102, 90)]
COINM_BARE_SNAPSHOT = [bare_snapshot(100, BTC_BIDS, BTC_ASKS), cm_depth(1100, 95, 102, 90)]
COINM_TRADE_FIRST = [cm_trade(900, 1, 60000.0, 3, True), cm_snapshot(100, BTC_BIDS, BTC_ASKS)]


@pytest.mark.parametrize("messages, symbol, declared, found, line, column", [
    (COINM, "BTCUSD_PERP", "usdm_futures", "coinm_futures", 1, "pair"),        # the /dapi snapshot tells
    (COINM_BARE_SNAPSHOT, "BTCUSD_PERP", "usdm_futures", "coinm_futures", 2, "ps"),  # the depthUpdate's ps
    (COINM_TRADE_FIRST, "BTCUSD_PERP", "usdm_futures", "coinm_futures", 1, "s"),
    (COINM, "BTCUSD_PERP", "spot", "coinm_futures", 1, "pair"),
    (COINM_BARE_SNAPSHOT, "BTCUSD_PERP", "spot", "coinm_futures", 2, "ps"),
    (SPOT, "BTCUSDT", "usdm_futures", "spot", 2, "pu"),                        # no pu: spot
    (SPOT, "BTCUSDT", "coinm_futures", "spot", 2, "pu"),
    (SPOT[2:], "BTCUSDT", "coinm_futures", "spot", 1, "M"),                    # a spot trade tells too
    (USDM, "BTCUSDT", "spot", "usdm_futures", 1, "E"),                         # the /fapi snapshot tells
    (USDM[1:], "BTCUSDT", "spot", "usdm_futures", 1, "pu"),  # before: "nothing valid", the U/u rule broken
    (USDM[1:], "BTCUSDT", "coinm_futures", "usdm_futures", 1, "pu"),
])
def test_a_capture_of_another_market_is_refused_naming_both_and_the_line(tmp_path, messages, symbol, declared,
                                                                         found, line, column):
    path = write_capture(tmp_path / "other_market.gz", messages)
    with pytest.raises(DataError) as err:
        read_binance_capture([path], symbol, market=declared)
    msg = str(err.value)
    assert f"other_market.gz, line {line}" in msg and (err.value.line, err.value.column) == (line, column)
    assert f"market mismatch: declared market '{declared}', but the capture is {found}" in msg
    assert msg.endswith(f"set market: {found}")


def test_each_market_reads_its_own_capture(tmp_path):
    """The same shapes under the right declaration pass: the refusals above come from the mismatch."""
    spot = read_binance_capture([write_capture(tmp_path / "s.gz", SPOT)], "BTCUSDT", market="spot")
    usdm = read_binance_capture([write_capture(tmp_path / "u.gz", USDM)], "BTCUSDT", market="usdm_futures")
    assert len(spot.book) == 1 and spot.trades.amount.tolist() == [0.5]  # spot sizes untouched
    assert len(usdm.book) == 1 and usdm.book.bid_sz_0.iloc[0] == 3.0  # USD-M sizes untouched
    assert "contract_size_usd" not in usdm.report["units"]


# --------------------------------------------------------------------------- properties

CONTRACTS = st.integers(1, 10**6)
PRICES = st.decimals(min_value="0.0001", max_value="500000", places=4).map(float)


@settings(max_examples=200, deadline=None)
@given(CONTRACTS, PRICES, st.sampled_from([10.0, 100.0, 25.0]))
def test_conversion_matches_exact_arithmetic_and_keeps_the_notional(contracts, price, size):
    base = float(contracts_to_base(contracts, price, size))
    exact = Fraction(contracts) * Fraction(size) / Fraction(price)  # no rounding at all
    assert math.isclose(base, float(exact), rel_tol=1e-15)
    assert math.isclose(base * price, contracts * size, rel_tol=1e-14)  # USD notional preserved


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), CONTRACTS), min_size=1, max_size=12, unique_by=lambda t: t[0]),
       st.lists(st.tuples(st.integers(1, 500), CONTRACTS), min_size=1, max_size=12, unique_by=lambda t: t[0]),
       st.sampled_from(["BTCUSD_PERP", "ETHUSD_240927"]))
def test_every_book_level_keeps_its_notional_through_the_reader(bid_ticks, ask_ticks, symbol):
    # bids at 60000 - tick, asks at 60000 + tick: never crossed
    bids = [(60000.0 - 0.5 * t, q) for t, q in bid_ticks]
    asks = [(60000.0 + 0.5 * t, q) for t, q in ask_ticks]
    size = COINM_CONTRACT_SIZE_USD[symbol.split("_")[0]]
    lower = symbol.lower()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_capture(Path(tmp) / "cap.gz", [
            cm_snapshot(10, bids, asks, sym=symbol), cm_depth(1100, 9, 11, 8, sym=lower),
            cm_depth(2100, 12, 12, 11, sym=lower)])
        row = read_binance_capture([path], symbol, market="coinm_futures").book.iloc[0]
    contracts = dict(bids) | dict(asks)  # price -> contracts, independent of the reader's layout
    for side in ("bid", "ask"):
        for i in range(10):
            px, sz = row[f"{side}_px_{i}"], row[f"{side}_sz_{i}"]
            if math.isnan(px):
                assert math.isnan(sz)
                continue
            assert math.isclose(sz * px, contracts[px] * size, rel_tol=1e-12), (side, i, px, sz)
    n_bids, n_asks = min(len(bids), 10), min(len(asks), 10)
    assert row[[f"bid_px_{i}" for i in range(10)]].notna().sum() == n_bids
    assert row[[f"ask_px_{i}" for i in range(10)]].notna().sum() == n_asks


# --------------------------------------------------------------------------- end to end through the source seam


def test_a_coinm_capture_stages_through_stage_partition(conn, tmp_path):
    btc_capture(tmp_path / "btcusd_perp_20240808.gz")
    spec = SourceSpec(kind="file", file_format="binance", market="coinm_futures",
                      book_path=str(tmp_path / "{symbol_lower}_{yyyymmdd}.gz"), expect_full_day=False)
    window = PartitionWindow.for_day("BTCUSD_PERP", "2024-08-08")
    book, report = stage_partition(conn, spec, "raw_l2_snapshots", window)
    trades, _ = stage_partition(conn, spec, "raw_trades", window)
    book, trades = (rows if isinstance(rows, pd.DataFrame) else conn.table(rows).df() for rows in (book, trades))
    assert report["source"] == "binance capture" and report["market"] == "coinm_futures"
    assert set(book.exchange) == {"binance-delivery"} and set(trades.exchange) == {"binance-delivery"}
    assert book.bid_sz_0.tolist() == pytest.approx([0.02, 0.02], rel=1e-12)       # 12 x 100 / 60000
    assert trades.amount.tolist() == pytest.approx([0.005, 0.016], rel=1e-12)     # not 3 and 10 "BTC"
    # the same file declared USD-M is refused through the seam too, naming the file and line
    with pytest.raises(DataError, match=r"btcusd_perp_20240808.gz, line 1, column 'pair': market mismatch"):
        stage_partition(conn, replace(spec, market="usdm_futures"), "raw_l2_snapshots", window)
