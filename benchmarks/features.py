"""Feature-stage speed: the whole DuckDB catalogue against the floor of a plain scan of the raw
columns it reads, and the OFI + price families against a plain pandas baseline, all measured in
this one run (the machine is shared and noisy), plus peak memory of a week built day by day.

Run: ``.venv/bin/python benchmarks/features.py [--repeat 3] [--week-repeat 1]``.
Data: synthetic 1-second books and trades of BTCUSDT, ETHUSDT, SOLUSDT on 2024-08-08, with
2024-08-07 stored too (the look-back), in a DuckDB file under a temp dir; the week is BTCUSDT
2024-08-02..08 in a second file, built in a fresh process whose peak resident set is reported.
Prints seconds (best of ``--repeat``) and the ratios: catalogue / scan (goal <= 10x) and DuckDB
families / pandas (goal < 1); peak memory goal < 4 GB. Also checks pandas and DuckDB agree.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from timing import best_of

from atra_pipeline.core.features.build import build_features
from atra_pipeline.core.features.registry import FEATURES, cross_asset_peers, feature_columns
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import PartitionWindow, prepare, replace_partition
from atra_pipeline.core.storage.sql import bind, load_sql, run_script

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DATE = "2024-08-08"
WEEK_SYMBOL = "BTCUSDT"
WEEK = [str(d.date()) for d in pd.date_range(end=DATE, periods=7, freq="D")]
STEP_S = 60
LEVELS = 10
H10 = sum(1 / m for m in range(1, LEVELS + 1))
BOOK_COLUMNS = [f"{side}_{kind}_{i}" for side in ("bid", "ask") for kind in ("px", "sz") for i in range(LEVELS)]
OFI_WINDOWS = {"10s": 10, "30s": 30, "1m": 60, "5m": 300}
RET_WINDOWS = {"10s": 10, "1m": 60, "5m": 300, "15m": 900, "1h": 3600}
VOL_WINDOWS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
PANDAS_FAMILIES = ("ofi", "price")
GB = 1024**3


def window_of(symbol: str, date: str = DATE) -> PartitionWindow:
    return PartitionWindow.for_day(symbol, date)


def peers(symbol: str) -> list[str]:
    """The books ``symbol``'s cross-asset family reads, as the asset passes them."""
    return cross_asset_peers(symbol, SYMBOLS)


def fill(path: Path, days: list[tuple[str, str]], cache: dict) -> None:
    """Store synthetic book and trades of each (symbol, date) in the DuckDB file ``path``."""
    with duckdb.connect(str(path)) as conn:
        prepare(conn)
        for symbol, date in days:
            if (symbol, date) not in cache:
                cache[(symbol, date)] = generate_market_day(symbol, date)
            book, trades = cache[(symbol, date)]
            window = window_of(symbol, date)
            replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
            replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)
        conn.execute("CHECKPOINT")


# -- (b) the floor: scan the raw columns the catalogue reads --------------------------------------

def scan_raw(conn: duckdb.DuckDBPyConnection, build: dict) -> None:
    """Sum every raw column the catalogue reads, over the range its builds load (``build``: their parameters)."""
    params = {"start": build["load_start"], "end": build["end"]}
    symbols = ", ".join(f"'{s}'" for s in SYMBOLS)  # a literal list, so the scan prunes row groups by symbol
    where = f"WHERE symbol IN ({symbols}) AND ts >= $start AND ts < $end"
    book_sums = ", ".join(f"sum({c})" for c in BOOK_COLUMNS)
    conn.execute(f"SELECT count(*), sum(epoch_us(ts)), sum(length(symbol)), {book_sums} "
                 f"FROM raw_l2_snapshots {where}", params).fetchall()
    conn.execute(f"SELECT count(*), sum(epoch_us(ts)), sum(length(symbol)), sum(price), sum(amount), "
                 f"sum((side = 'buy')::INT) FROM raw_trades {where}", params).fetchall()


# -- (a) the catalogue, and a per-statement breakdown of it ---------------------------------------

def build_all(conn: duckdb.DuckDBPyConnection, step_s: int) -> None:
    for symbol in SYMBOLS:
        build_features(conn, window_of(symbol), step_s, peers=peers(symbol))


class TimedConnection:
    """A connection whose ``execute`` records (statement label, seconds) and the parameters it was
    given, so build_features runs unchanged and its parameters need not be copied here."""

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self._conn, self.timings, self.params = conn, [], {}

    def execute(self, sql: str, *args):
        if args and isinstance(args[0], dict):
            self.params.update(args[0])
        start = time.perf_counter()
        result = self._conn.execute(sql, *args)
        self.timings.append((_label(sql), time.perf_counter() - start))
        return result

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _label(sql: str) -> str:
    text = " ".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    if m := re.search(r"CREATE OR REPLACE TEMP TABLE (\w+)", text):
        return f"create {m.group(1)}"
    return "other (column checks)"


def breakdown(conn: duckdb.DuckDBPyConnection, step_s: int, repeat: int) -> dict[str, float]:
    """Seconds per statement of build_features over the three partitions (best of ``repeat``)."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        timed = TimedConnection(conn)
        for symbol in SYMBOLS:
            build_features(timed, window_of(symbol), step_s, peers=peers(symbol))
        totals: dict[str, float] = {}
        for label, seconds in timed.timings:
            totals[label] = totals.get(label, 0.0) + seconds
        best = {k: min(v, best.get(k, v)) for k, v in totals.items()}
    return best


def build_params(conn: duckdb.DuckDBPyConnection, window: PartitionWindow, step_s: int = STEP_S) -> dict:
    """The parameters build_features binds for ``window`` (load_start, lookbacks_s, grid_start, ...)."""
    timed = TimedConnection(conn)
    build_features(timed, window, step_s, peers=peers(window.symbol))
    return timed.params


# -- (d) DuckDB: only the OFI and price families, the way build.py runs them ----------------------

def duckdb_families(conn: duckdb.DuckDBPyConnection, params: dict) -> None:
    """prepare_book.sql, then ofi.sql and price.sql into temp tables, joined on the day's decision
    grid, with the parameters build_features binds (``build_params``)."""
    run_script(conn, load_sql("features/prepare_book.sql"), params)
    for family in PANDAS_FAMILIES:
        sql = load_sql(f"features/{family}.sql")
        conn.execute(f"CREATE OR REPLACE TEMP TABLE fx_{family} AS {sql}", bind(sql, params))
    columns = ", ".join(feature_columns("ofi") + feature_columns("price"))
    conn.execute(f"CREATE OR REPLACE TEMP TABLE bench_families AS SELECT ts, {columns} "
                 "FROM fx_grid LEFT JOIN fx_ofi USING (ts) LEFT JOIN fx_price USING (ts) "
                 "WHERE ts >= $start ORDER BY ts",
                 {"start": params["start"]})


# -- (c) the pandas baseline a user would write -------------------------------------------------------

def read_book(conn: duckdb.DuckDBPyConnection, params: dict) -> pd.DataFrame:
    """Raw snapshots the build loads (the look-back too), as pandas: not timed."""
    return conn.execute(
        f"SELECT ts, {', '.join(BOOK_COLUMNS)} FROM raw_l2_snapshots "
        "WHERE symbol = $symbol AND ts >= $start AND ts < $end ORDER BY ts",
        {"symbol": params["symbol"], "start": params["load_start"], "end": params["end"]},
    ).fetchdf()


def pandas_families(raw: pd.DataFrame, window: PartitionWindow, step_s: int = STEP_S) -> pd.DataFrame:
    """OFI and price features at the decision times, in plain pandas (rolling on a DatetimeIndex)."""
    book = raw.set_index("ts")
    grid = pd.date_range(window.start, window.end, freq=f"{step_s}s", inclusive="left", name="ts")

    # Cont, Kukanov & Stoikov order-flow contribution of each level between consecutive snapshots.
    prev = book.shift(1)
    e = {}
    for m in range(LEVELS):
        bp, bs, ap, az = (book[f"{s}_{m}"] for s in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
        pbp, pbs, pap, paz = (prev[f"{s}_{m}"] for s in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
        e[m] = (bs.where(bp >= pbp, 0.0) - pbs.where(bp <= pbp, 0.0)
                - az.where(ap <= pap, 0.0) + paz.where(ap >= pap, 0.0)).fillna(0.0)
    flows = pd.DataFrame({
        "ofi_0": e[0],
        "ofi_w": sum(e[m] / (m + 1) for m in range(LEVELS)) / H10,
        "depth": (book["bid_sz_0"] + book["ask_sz_0"]) / 2,
    })
    out = {}
    for name, w in OFI_WINDOWS.items():
        rolled = flows.rolling(f"{w}s").agg({"ofi_0": "sum", "ofi_w": "sum", "depth": "mean"})
        rolled = rolled.reindex(grid, method="ffill")
        out[f"ofi_raw_{name}"] = rolled["ofi_0"]
        out[f"ofi_norm_{name}"] = rolled["ofi_0"] / rolled["depth"]
        out[f"ofi_weighted_{name}"] = rolled["ofi_w"]

    # Mid log returns as of t - w, realised vol over (t - w, t], distance from the last hour's extremes.
    mid = (book["bid_px_0"] + book["ask_px_0"]) / 2
    r2 = (np.log(mid / mid.shift(1)).fillna(0.0)) ** 2
    mid_now = mid.reindex(grid, method="ffill")
    for name, w in RET_WINDOWS.items():
        out[f"ret_{name}"] = pd.Series(np.log(mid_now.to_numpy() / mid.asof(grid - pd.Timedelta(seconds=w)).to_numpy()),
                                       index=grid)
    for name, w in VOL_WINDOWS.items():
        out[f"rv_{name}"] = np.sqrt(r2.rolling(f"{w}s").sum().reindex(grid, method="ffill"))
    out["momentum_zscore_15m"] = out["ret_15m"] / (out["rv_1h"] * 0.5).replace(0.0, np.nan)
    hour = mid.rolling("3600s")
    out["dist_high_1h_bps"] = 1e4 * (mid_now - hour.max().reindex(grid, method="ffill")) / mid_now
    out["dist_low_1h_bps"] = 1e4 * (mid_now - hour.min().reindex(grid, method="ffill")) / mid_now
    # warm-up, as in the SQL: a window the loaded data do not reach back over is NULL
    lookback = {f.name: f.lookback_s for f in FEATURES}
    for col in out:
        out[col] = out[col].where(mid.index[0] <= grid - pd.Timedelta(seconds=lookback[col]))
    return pd.DataFrame(out, index=grid)[feature_columns("ofi") + feature_columns("price")]


# -- (e) peak memory of a week, in a fresh process ----------------------------------------------------

def peak_rss() -> int:
    """This process's peak resident set in bytes. VmHWM rather than getrusage's ru_maxrss: on Linux
    ru_maxrss survives exec, so a child would report its (large) parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def week_child(path: str, step_s: int) -> None:
    """Child process: build each day of the week in turn; print seconds and peak RSS as JSON."""
    conn = duckdb.connect(path)
    base = peak_rss()
    start = time.perf_counter()
    rows = 0
    for date in WEEK:
        build_features(conn, window_of(WEEK_SYMBOL, date), step_s, peers=peers(WEEK_SYMBOL))
        rows += conn.execute("SELECT count(*) FROM fx_features").fetchall()[0][0]
    seconds = time.perf_counter() - start
    peak = peak_rss()
    print(json.dumps({"seconds": seconds, "peak_rss": peak, "base_rss": base, "rows": rows,
                      "memory_limit": conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]}))


def run_week(path: Path, step_s: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--week-child", str(path), "--step", str(step_s)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- agreement -------------------------------------------------------------------------------------

def compare(duck: pd.DataFrame, pand: pd.DataFrame) -> list[tuple[str, int, float, float]]:
    """Per column: overlapping non-null rows, max abs difference, max relative difference."""
    rows = []
    for col in pand.columns:
        a, b = duck[col].astype(float), pand[col].astype(float)
        both = a.notna() & b.notna()
        diff = (a[both] - b[both]).abs()
        rel = diff / np.maximum(a[both].abs(), b[both].abs()).clip(lower=1e-300)
        null_mismatch = int((a.isna() != b.isna()).sum())
        rows.append((col, int(both.sum()), float(diff.max()) if len(diff) else float("nan"),
                     float(rel.max()) if len(rel) else float("nan"), null_mismatch))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--week-repeat", type=int, default=1)
    parser.add_argument("--week-child", help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, default=STEP_S, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.week_child:
        week_child(args.week_child, args.step)
        return

    cache: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prev = str((pd.Timestamp(DATE) - pd.Timedelta(days=1)).date())
        fill(tmp / "features.duckdb", [(s, d) for d in (prev, DATE) for s in SYMBOLS], cache)
        fill(tmp / "week.duckdb", [(s, d) for d in WEEK for s in SYMBOLS], cache)  # with its cross-asset peers
        n_book = sum(len(cache[(s, DATE)][0]) for s in SYMBOLS)
        n_trades = sum(len(cache[(s, DATE)][1]) for s in SYMBOLS)
        cache.clear()

        with duckdb.connect(str(tmp / "features.duckdb")) as conn:
            params = {s: build_params(conn, window_of(s)) for s in SYMBOLS}
            assert len({(p["load_start"], p["end"]) for p in params.values()}) == 1
            scan_s = best_of(args.repeat, lambda: scan_raw(conn, params[SYMBOLS[0]]))
            build_s = best_of(args.repeat, lambda: build_all(conn, STEP_S))
            build_1s = best_of(args.repeat, lambda: build_all(conn, 1))
            parts = breakdown(conn, STEP_S, args.repeat)
            parts_1s = breakdown(conn, 1, args.repeat)

            raws = {s: read_book(conn, params[s]) for s in SYMBOLS}
            pandas_s = best_of(args.repeat, lambda: [pandas_families(raws[s], window_of(s)) for s in SYMBOLS])
            duck_s = best_of(args.repeat, lambda: [duckdb_families(conn, params[s]) for s in SYMBOLS])
            agreement = []
            for s in SYMBOLS:
                duckdb_families(conn, params[s])
                duck = conn.execute("SELECT * FROM bench_families").fetchdf().set_index("ts")
                agreement.append(compare(duck, pandas_families(raws[s], window_of(s))))
            # the catalogue build gives the same values as the isolated families
            build_features(conn, window_of(SYMBOLS[-1]), STEP_S, peers=peers(SYMBOLS[-1]))
            cols = feature_columns("ofi") + feature_columns("price")
            same = conn.execute("SELECT count(*) FROM fx_features f JOIN bench_families b USING (ts) WHERE "
                                + " OR ".join(f"f.{c} IS DISTINCT FROM b.{c}" for c in cols)).fetchall()[0][0]

        weeks = [run_week(tmp / "week.duckdb", STEP_S) for _ in range(args.week_repeat)]
        week = min(weeks, key=lambda w: w["seconds"])
        peak = max(w["peak_rss"] for w in weeks)

    print(f"Features: {len(SYMBOLS)} partitions ({', '.join(SYMBOLS)}, {DATE}, previous day stored for the "
          f"look-back), {n_book:,} snapshots and {n_trades:,} trades in the days, {len(feature_columns())} "
          f"features; best of {args.repeat}")
    print(f"{'figure':<64}{'seconds':>9}  ratio")
    table = [
        ("(a) whole catalogue, 3 partitions, step 60 s", build_s, f"{build_s / scan_s:.1f}x scan"),
        ("(a) whole catalogue, 3 partitions, step 1 s", build_1s, f"{build_1s / scan_s:.1f}x scan"),
        ("(b) scan raw columns read (book + trades ts/price/amount/side)", scan_s, "1.0x scan"),
        ("(c) pandas baseline: OFI + price families, step 60 s", pandas_s, "1.00x pandas"),
        ("(d) DuckDB: prepare_book + ofi + price, step 60 s", duck_s, f"{duck_s / pandas_s:.2f}x pandas"),
    ]
    for name, seconds, ratio in table:
        print(f"{name:<64}{seconds:>9.3f}  {ratio}")
    print(f"goals: catalogue <= 10x scan ({'met' if build_s <= 10 * scan_s else 'NOT met'} at step 60 s), "
          f"DuckDB families < pandas ({'met' if duck_s < pandas_s else 'NOT met'})")
    print(f"(e) one symbol-week ({WEEK_SYMBOL} {WEEK[0]}..{WEEK[-1]}), 7 builds in one fresh process, step 60 s: "
          f"{week['seconds']:.2f} s, peak RSS {peak / GB:.2f} GB (process after import + connect "
          f"{week['base_rss'] / GB:.2f} GB; DuckDB memory_limit {week['memory_limit']}; goal < 4 GB: "
          f"{'met' if peak < 4 * GB else 'NOT met'})")

    print(f"\nWhere the catalogue's time goes: statements of build_features summed over the 3 partitions, "
          f"best of {args.repeat}")
    print(f"{'statement':<40}{'step 60 s':>11}{'share':>8}{'step 1 s':>11}{'share':>8}")
    total, total_1s = sum(parts.values()), sum(parts_1s.values())
    for label in sorted(parts, key=lambda k: -parts[k]):
        print(f"{label:<40}{parts[label]:>11.3f}{parts[label] / total:>8.0%}"
              f"{parts_1s.get(label, 0):>11.3f}{parts_1s.get(label, 0) / total_1s:>8.0%}")
    print(f"{'sum':<40}{total:>11.3f}{'':>8}{total_1s:>11.3f}")

    print("\nAgreement, pandas baseline vs DuckDB (all 3 partitions; overlapping non-null rows):")
    print(f"{'column':<24}{'rows':>7}{'max abs diff':>15}{'max rel diff':>15}{'null mismatch':>15}")
    for i, col in enumerate(agreement[0]):
        name = col[0]
        n = sum(a[i][1] for a in agreement)
        d = max(a[i][2] for a in agreement)
        r = max(a[i][3] for a in agreement)
        nm = sum(a[i][4] for a in agreement)
        print(f"{name:<24}{n:>7}{d:>15.3g}{r:>15.3g}{nm:>15}")
    print(f"catalogue build vs isolated families, {SYMBOLS[-1]}: {same} rows differ")


if __name__ == "__main__":
    main()
