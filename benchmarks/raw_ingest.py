"""Raw-stage speed per symbol-day: synthetic generation, DuckDB write, and file imports against
the floor of a plain Parquet COPY, all measured in this one run (the machine is shared and noisy).
A raw partition's whole run (book and trades staged from Parquet, every raw rule judged, both
written in one transaction: ``core/raw/partition.py``) against a plain COPY of the same two
files; and the same partition through Dagster, the Great Expectations checks included.

Run: ``.venv/bin/python benchmarks/raw_ingest.py [--repeat 3] [--symbol BTCUSDT]``.
Prints seconds (best of ``--repeat``) and each import's ratio to the floor (goal: <= 3x).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
from timing import best_of, best_of_interleaved

from atra_pipeline.core.raw import files
from atra_pipeline.core.raw.binance_capture import read_binance_capture
from atra_pipeline.core.raw.partition import stage_raw, write_raw
from atra_pipeline.core.raw.schema import L2_COLUMNS
from atra_pipeline.core.raw.sources import SourceSpec
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import PartitionWindow, prepare, replace_partition
from atra_pipeline.core.storage.paths import SHARED_DATA_DIR

DATE = "2024-08-08"


def to_tardis(book: pd.DataFrame) -> pd.DataFrame:
    """The same rows in Tardis book_snapshot_10 layout (microsecond timestamps)."""
    us = book["ts"].astype("int64").to_numpy()
    out = {"exchange": "binance", "symbol": book["symbol"].to_numpy(), "timestamp": us, "local_timestamp": us + 3000}
    for i in range(10):
        out[f"asks[{i}].price"] = book[f"ask_px_{i}"].to_numpy()
        out[f"asks[{i}].amount"] = book[f"ask_sz_{i}"].to_numpy()
        out[f"bids[{i}].price"] = book[f"bid_px_{i}"].to_numpy()
        out[f"bids[{i}].amount"] = book[f"bid_sz_{i}"].to_numpy()
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--symbol", default="BTCUSDT")
    args = parser.parse_args()
    window = PartitionWindow.for_day(args.symbol, DATE)


    gen_s = best_of(args.repeat, lambda: generate_market_day(args.symbol, DATE))
    book, trades = generate_market_day(args.symbol, DATE)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        parquet, tardis_csv = tmp / "book.parquet", tmp / "tardis_book_snapshot_10.csv"
        trades_parquet = tmp / "trades.parquet"
        book.to_parquet(parquet)
        trades.to_parquet(trades_parquet)
        to_tardis(book).to_csv(tardis_csv, index=False)

        def fresh(name: str) -> duckdb.DuckDBPyConnection:
            path = tmp / f"{name}.duckdb"
            path.unlink(missing_ok=True)
            conn = duckdb.connect(str(path))
            prepare(conn)
            return conn

        def write_frame():
            with fresh("frame") as conn:
                replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)

        def copy_floor():
            with fresh("floor") as conn:
                conn.execute(f"COPY raw_l2_snapshots FROM '{parquet}' (FORMAT parquet)")

        def import_file(path: Path, fmt: str):
            def run():
                with fresh(fmt) as conn:
                    files.stage_book(conn, [path], fmt, window)
                    replace_partition(conn, "raw_l2_snapshots", files.BOOK_STAGE, L2_COLUMNS, window)
            return run


        spec = SourceSpec(kind="file", file_format="atra", book_path=str(parquet), trades_path=str(trades_parquet))

        def partition_floor():
            with fresh("partition_floor") as conn:
                conn.execute(f"COPY raw_l2_snapshots FROM '{parquet}' (FORMAT parquet)")
                conn.execute(f"COPY raw_trades FROM '{trades_parquet}' (FORMAT parquet)")

        def partition_run():
            with fresh("partition") as conn:
                staged = stage_raw(conn, spec, window)
                outcomes = staged.outcomes(conn, {"min_rows": 86_400, "max_rows": 86_400, "edges": True})
                write_raw(conn, staged, outcomes)

        def partition_dagster():
            import dagster as dg

            from atra_pipeline.defs import raw
            from atra_pipeline.defs.common.partitions import partition_key
            from atra_pipeline.defs.common.resources import AtraDuckDB, RawSourceResource

            path = tmp / "dagster.duckdb"
            path.unlink(missing_ok=True)
            source = RawSourceResource(kind="file", file_format="atra", book_path=str(parquet),
                                       trades_path=str(trades_parquet))
            result = dg.materialize([*raw.assets, *raw.asset_checks], partition_key=partition_key(DATE, args.symbol),
                                    resources={"duckdb": AtraDuckDB(database=str(path)), "raw_source": source})
            assert result.success

        partition_dagster()  # Dagster's and GE's imports and first-run costs, outside the timing
        timed = best_of_interleaved(args.repeat, {"floor": partition_floor, "core": partition_run,
                                                   "dagster": partition_dagster})
        partition_floor_s, partition_s, dagster_s = timed["floor"], timed["core"], timed["dagster"]
        floor_s = best_of(args.repeat, copy_floor)
        write_s = best_of(args.repeat, write_frame)
        parquet_s = best_of(args.repeat, import_file(parquet, "atra"))
        tardis_s = best_of(args.repeat, import_file(tardis_csv, "tardis"))

    rows = [
        ("generate synthetic day (book + trades)", gen_s, None),
        ("write DataFrame into DuckDB (replace_partition)", write_s, write_s / floor_s),
        ("import Parquet, our schema (validate + write)", parquet_s, parquet_s / floor_s),
        ("import Tardis CSV book_snapshot_10 (validate + write)", tardis_s, tardis_s / floor_s),
        ("floor: plain COPY of the Parquet into DuckDB", floor_s, 1.0),
    ]
    partition_rows = [
        ("raw partition: stage + every rule + one write (core)", partition_s, partition_s / partition_floor_s),
        ("raw partition through Dagster, GE checks included", dagster_s, dagster_s / partition_floor_s),
        ("floor: plain COPY of the book and trades Parquet", partition_floor_s, 1.0),
    ]
    print(f"Raw ingest, one symbol-day: {args.symbol} {DATE}, {len(book):,} snapshots x {len(L2_COLUMNS)} columns, "
          f"best of {args.repeat}")
    print(f"{'step':<56}{'seconds':>10}{'x floor':>10}")
    for name, seconds, ratio in rows:
        print(f"{name:<56}{seconds:>10.3f}{'' if ratio is None else f'{ratio:>10.2f}'}")
    print("goal: imports within 3x of the floor")
    print(f"\nRaw partition, book + trades ({len(trades):,} trades), best of {args.repeat}")
    for name, seconds, ratio in partition_rows:
        print(f"{name:<56}{seconds:>10.3f}{ratio:>10.2f}")
    print("goal: the partition's run within 3x of the floor")
    capture = SHARED_DATA_DIR / "binance_spot_capture"
    if capture.is_dir():
        paths = sorted(capture.glob(f"{args.symbol.lower()}_*.gz"))
        seconds = best_of(args.repeat, lambda: read_binance_capture(paths, args.symbol))
        result = read_binance_capture(paths, args.symbol)
        print(f"Binance capture rebuild, {len(paths)} files ({sum(f['lines'] for f in result.report['files']):,} "
              f"messages, {len(result.book)} snapshots): {seconds:.3f} s")
        # the second day as a per-day template reads it: its own file, from the first day's stored book
        days = [pd.Timestamp(p.stem.split("_")[1][:8]) for p in paths]
        first = read_binance_capture(paths[:1], args.symbol, start=days[0], end=days[0] + pd.Timedelta(days=1))
        window = {"start": days[1], "end": days[1] + pd.Timedelta(days=1)}
        timed = best_of_interleaved(args.repeat, {
            "per_day": lambda: read_binance_capture(paths[1:], args.symbol, previous=first.book_state, **window),
            "glob": lambda: read_binance_capture(paths, args.symbol, **window)})
        print(f"its day {days[1].date()}: per-day file from the stored book {timed['per_day']:.3f} s, "
              f"every file replayed {timed['glob']:.3f} s ({timed['glob'] / timed['per_day']:.2f}x)")


if __name__ == "__main__":
    main()
