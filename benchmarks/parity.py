"""Parity of backtest and live: a stored day replayed through the live path (``atra replay``'s code)
beside the backtest of the same model and decisions (``atra backtest``'s), compared trade by trade.

Run: ``.venv/bin/python benchmarks/parity.py [--start 00:00 --end 24:00] [--real]``.
Synthetic: 3 symbols, 2024-08-08 after a stored 2024-08-07, features and labels as the assets make
them, a confident registered model (so its bets clear the costs often enough to trade). ``--real``
also runs the Binance spot capture of ``../shared/data`` (BTCUSDT, ETHUSDT; 23:54 to 00:05 across
midnight, both days) on a 10-second decision grid with a 60-second vertical barrier, the capture
being 11 minutes long. Prints the seconds of each path, their ratio, and every trade that differs.
"""

from __future__ import annotations

import argparse
import warnings

import duckdb

from atra_pipeline.core.live.parity import backtest_and_replay
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import prepare
from atra_pipeline.core.storage.paths import SHARED_DATA_DIR
from atra_pipeline_tests.support.models import register_random_model
from atra_pipeline_tests.support.stored_day import REAL_SPEC, store_capture, store_raw, store_research

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
def run(conn, model, days: list[tuple[str, str, str]]) -> dict:
    got = backtest_and_replay(conn, model, days)
    summary = got.summary
    print(f"  {days[0][0]} {days[0][1]} .. {days[-1][0]} {days[-1][2]}: backtest {got.backtest_s:.2f} s, replay "
          f"{got.replay_s:.2f} s (replay / backtest {got.replay_s / got.backtest_s:.0f}x); decisions "
          f"{len(got.backtest.decisions)} (backtest: the events), {got.replay_decisions} (replay: every decision time "
          f"x symbol)")
    print(f"  trades {summary['trades_backtest']} / {summary['trades_live']}, matched {summary['matched']}, "
          f"mismatched {summary['mismatched']}, live positions open where the data end {summary['open_at_data_end']}; "
          f"net P&L {summary['net_pnl_backtest']:.2f} / "
          f"{summary['net_pnl_live']:.2f} (within 1%: {summary['pnl_within_1pct']}); largest relative quantity gap "
          f"{summary['max_qty_relative_gap']:.1e}")
    if not got.table["match"].all():
        print(got.table[~got.table["match"]].to_string(index=False))
    return summary


def synthetic(start: str, end: str) -> None:
    print(f"Synthetic market, {len(SYMBOLS)} symbols")
    with duckdb.connect() as conn:
        prepare(conn)
        store_raw(conn, {(s, d): generate_market_day(s, d) for s in SYMBOLS for d in ("2024-08-07", "2024-08-08")})
        store_research(conn, SYMBOLS, "2024-08-08")
        model = register_random_model(conn, win_rate=0.9, approve=False, spec=ModelSpec(tuple(SYMBOLS)))
        run(conn, model, [("2024-08-08", start, end)])


def real() -> None:
    folder = SHARED_DATA_DIR / "binance_spot_capture"
    if not folder.is_dir():
        print(f"Real capture: not found at {folder}, skipped")
        return
    print("Real Binance spot capture (BTCUSDT, ETHUSDT), 10-second decisions")
    with duckdb.connect() as conn:
        prepare(conn)
        symbols = store_capture(conn, folder)
        model = register_random_model(conn, win_rate=0.9, approve=False, spec=ModelSpec(tuple(symbols), **REAL_SPEC))
        run(conn, model, [("2024-08-08", "23:54", "24:00"), ("2024-08-09", "00:00", "00:06")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="00:00", help="first decision time of the synthetic day")
    parser.add_argument("--end", default="24:00", help="decisions before this time of day")
    parser.add_argument("--real", action="store_true", help="also the real capture in ../shared/data")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    synthetic(args.start, args.end)
    if args.real:
        real()


if __name__ == "__main__":
    main()
