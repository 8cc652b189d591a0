"""The synthetic market beside the real Binance capture: spread, depth, returns, trading.

Run: ``.venv/bin/python benchmarks/synthetic_vs_real.py [--days 3]``. Needs ``../shared/data``.
The real sample is ~11 minutes around midnight UTC (2024-08-08/09); the synthetic columns are
whole days (2024-08-08 onwards, default seed), so the 1-minute figures of the real sample rest
on ~11 returns and are indicative only.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from atra_pipeline.core.raw.binance_capture import read_binance_capture
from atra_pipeline.core.raw.market_stats import market_stats
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.paths import SHARED_DATA_DIR

SHOWN = ["mid_median", "spread_bps_median", "spread_bps_mean", "spread_ticks_mean", "spread_1tick_share",
         "depth1_bid_quote_median", "depth10_bid_quote_median", "ret_std_1s_bps", "ret_std_1m_bps",
         "trades_per_min", "trade_quote_median", "buy_share", "imbalance_next_ret_corr"]


def real_stats(symbol: str) -> dict:
    capture = SHARED_DATA_DIR / "binance_spot_capture"
    paths = sorted(capture.glob(f"{symbol.lower()}_*.gz"))
    result = read_binance_capture(paths, symbol)
    return market_stats(result.book, result.trades, tick=0.01)


def synthetic_stats(symbol: str, days: int) -> dict:
    books, trades = zip(*(generate_market_day(symbol, d) for d in pd.date_range("2024-08-08", periods=days)))
    return market_stats(pd.concat(books), pd.concat(trades), tick=0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    if not SHARED_DATA_DIR.is_dir():
        print(f"real capture not found at {SHARED_DATA_DIR}")
        return 1
    table = {}
    for symbol in ("BTCUSDT", "ETHUSDT"):
        table[f"{symbol} real"] = real_stats(symbol)
        table[f"{symbol} synthetic"] = synthetic_stats(symbol, args.days)
    frame = pd.DataFrame(table).loc[SHOWN]
    print(frame.to_markdown(floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
