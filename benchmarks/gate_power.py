"""The gate's error rates, measured: how often it approves a model of a market without a signal
(false approvals; the goal is 0), and how often one of a market with a signal strong enough to
pay costs, against days of data.

Each study is one command a user could run: ``atra run --start D1 --end Dn --config study.yaml``
on a fresh database, the YAML setting the synthetic market's seed and ``signal_strength`` (the
whole research path: raw, features, labels, tuned and walk-forward model, placebo studies,
backtest, risk report, gate). Studies run in parallel processes (``--workers``).

Run: ``.venv/bin/python benchmarks/gate_power.py [--seeds 10] [--days 3] [--strengths 4,8]
[--signal-days 2,4] [--signal-seeds 3] [--trials 10] [--workers 2]``. Prints one row per study and
the table the README quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pandas as pd

FIRST_DAY = pd.Timestamp("2024-08-02")
# the failed checks the run summary lists (the gate's rules are reported apart, as "failed")
BLOCKING = r"\b((?:raw_l2_snapshots|raw_trades|features|labels|model_candidate|oof_predictions|backtest)\.[a-z_]+)"


def study(strength: float, seed: int, days: int, trials: int, root: Path) -> dict:
    """One study in its own database and Dagster instance; its gate decision and figures."""
    where = root / f"s{strength:g}-d{days}-seed{seed}"
    where.mkdir(parents=True)
    config = where / "study.yaml"
    config.write_text(f"resources:\n  raw_source:\n    config: {{seed: {seed}, signal_strength: {strength}}}\n"
                      f"ops:\n  model_candidate:\n    config: {{trials: {trials}}}\n")
    last = FIRST_DAY + pd.Timedelta(days=days - 1)
    env = {**os.environ, "ATRA_DUCKDB_PATH": str(where / "atra.duckdb"), "DAGSTER_HOME": str(where / "home"),
           "ATRA_LIGHTGBM_THREADS": "1"}  # studies run side by side: one thread each
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "atra_pipeline.cli", "run", "--start", f"{FIRST_DAY:%Y-%m-%d}",
                          "--end", f"{last:%Y-%m-%d}", "--config", str(config)], env=env, capture_output=True,
                         text=True)
    seconds = time.perf_counter() - start
    # exit 1 with a model: a blocking check failed on some partition (reported), the research ran
    row = {"strength": strength, "days": days, "seed": seed, "seconds": round(seconds), "exit": run.returncode,
           "checks_failed": ",".join(sorted(set(re.findall(BLOCKING, run.stdout))))}
    try:
        with duckdb.connect(str(where / "atra.duckdb"), read_only=True) as conn:
            model_id, status, reason, metrics = conn.execute(
                "SELECT model_id, status, reason, metrics FROM model_registry ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
            risk = dict(conn.execute("SELECT metric, value FROM risk_metrics WHERE model_id = ?",
                                     [model_id]).fetchall())
    except (duckdb.Error, TypeError):  # no database, or no model: the research did not run
        return {**row, "status": "run failed", "reason": run.stdout[-500:] + run.stderr[-500:]}
    m = json.loads(metrics)
    failed = [part.split(":")[0].strip() for part in reason.split("; ") if "FAILED" in part]
    return {**row, "status": status, "auc": m.get("auc"), "auc_z": m.get("auc_z"),
            "sharpe": risk.get("sharpe_ratio"), "placebo_max": risk.get("placebo_sharpe_max"),
            "baseline": risk.get("baseline_sharpe"), "dsr": risk.get("deflated_sharpe_ratio"), "pbo": risk.get("pbo"),
            "probability_of_loss": risk.get("probability_of_loss"),
            "trades": risk.get("trades"), "failed": ",".join(failed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="studies of the market without a signal")
    parser.add_argument("--days", type=int, default=3, help="days of data of those studies")
    parser.add_argument("--strengths", default="4,8", help="signal strengths of the market with a signal")
    parser.add_argument("--signal-days", default="2,4", help="days of data of the studies with a signal")
    parser.add_argument("--signal-seeds", type=int, default=3, help="studies per strength and length")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    plan = [(0.0, seed, args.days) for seed in range(1, args.seeds + 1)]
    plan += [(float(s), 100 + seed, d) for s in args.strengths.split(",") if s
             for d in (int(x) for x in args.signal_days.split(",") if x) for seed in range(args.signal_seeds)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.workers) as pool:
        rows = []
        for row in pool.map(lambda p: study(*p, args.trials, Path(tmp)), plan):
            rows.append(row)
            print(json.dumps(row), flush=True)
    frame = pd.DataFrame(rows)
    table = frame.groupby(["strength", "days"]).agg(
        studies=("seed", "size"), approved=("status", lambda s: int((s == "approved").sum())),
        run_failed=("status", lambda s: int((s == "run failed").sum())),
        median_auc=("auc", "median"), median_sharpe=("sharpe", "median"),
        median_placebo_max=("placebo_max", "median"), minutes_per_study=("seconds", lambda s: s.median() / 60),
    ).reset_index()
    table["approval_rate"] = table["approved"] / table["studies"]
    print(f"\n{len(frame)} studies in {(time.perf_counter() - started) / 60:.1f} min on {args.workers} workers")
    print(table.round(3).to_markdown(index=False))
    off = frame[frame["strength"] == 0]
    print(f"\nfalse approvals (signal off): {int((off['status'] == 'approved').sum())} of {len(off)} (goal 0)")
    print("rules failed most often:", frame["failed"].str.split(",").explode().value_counts().head(7).to_dict())


if __name__ == "__main__":
    main()
