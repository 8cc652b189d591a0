"""Model-study speed: seconds per Optuna trial under 5-fold purged CV on 3 symbols x 30 days of
1-minute decisions (~130k events, the catalogue's width of features), the share of trial time
spent outside LightGBM's own training (purging, Dataset building, prediction, bookkeeping; goal
< 10%), trials per minute, and the same with each fold's lgb.Dataset rebuilt in every trial.

Run: ``.venv/bin/python benchmarks/models.py [--days 30] [--trials 4] [--threads 1]`` (on a busy
2-core machine two LightGBM threads spin-wait: one is ~10x faster there).
Data: a constructed event matrix of the real shape (one event per symbol per minute, the
registry's feature columns plus ``side``, AR(1) features with a weak planted signal in the
depth imbalance, labels over the next 5 minutes), not the synthetic market itself, whose feature
build for 90 symbol-days would dominate the run; ``benchmarks/features.py`` times that part.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from atra_pipeline.core.models.training import TrainingSet, TrainingSettings, model_features, train_candidate

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
HOLD = pd.Timedelta(minutes=5)


def event_matrix(days: int, seed: int = 3) -> TrainingSet:
    rng = np.random.default_rng(seed)
    columns = model_features()
    index = pd.date_range("2024-07-01", periods=days * 1440, freq="1min")
    frames = []
    for symbol in SYMBOLS:
        n = len(index)
        shocks = rng.normal(size=(n, len(columns)))
        phi = rng.uniform(0.0, 0.98, len(columns))  # each feature its own persistence
        X = np.empty_like(shocks)
        X[0] = shocks[0]
        for t in range(1, n):
            X[t] = phi * X[t - 1] + shocks[t]
        frame = pd.DataFrame(X, columns=columns)
        frame["side"] = np.sign(frame["pressure_imbalance_5"]).replace(0, 1)
        p_win = 0.5 + 0.06 * np.tanh(np.abs(frame["pressure_imbalance_5"]))
        frame["label"] = (rng.random(n) < p_win).astype(int)
        frame["ts"], frame["symbol"], frame["t1"] = index, symbol, index + HOLD
        frame["ret"] = np.where(frame["label"] == 1, 1e-3, -1e-3)
        frame["weight"] = 1.0
        frames.append(frame)
    return TrainingSet.from_frame(pd.concat(frames, ignore_index=True), columns)


def run(data: TrainingSet, trials: int, threads: int, reuse: bool) -> dict:
    settings = TrainingSettings(trials=trials, n_splits=5, embargo=0.01, num_threads=threads, reuse_datasets=reuse,
                                max_estimators=300)
    start = time.perf_counter()
    result = train_candidate(data, settings)
    total = time.perf_counter() - start
    t = result.timings
    return {"study_s": t["study_s"], "per_trial_s": t["study_s"] / trials, "lgb_train_s": t["lightgbm_train_s"],
            "datasets_s": t["trial_datasets_s"], "initial_datasets_s": t["initial_datasets_s"],
            "outside_share": 1 - t["lightgbm_train_s"] / t["study_s"],
            "trials_per_min": 60 * trials / t["study_s"], "total_s": total, "auc": result.metrics["auc"],
            "pruned": result.study_summary["pruned"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    data = event_matrix(args.days)
    built = time.perf_counter() - start
    print(f"Model study: {len(data.y):,} events ({len(SYMBOLS)} symbols x {args.days} days of 1-minute decisions), "
          f"{data.X.shape[1]} features, 5-fold purged CV (1% embargo), {args.trials} trials, "
          f"LightGBM num_threads={args.threads}; event matrix built in {built:.1f} s")
    reuse = run(data, args.trials, args.threads, reuse=True)
    rebuild = run(data, args.trials, args.threads, reuse=False)
    print(f"{'figure':58s} {'reuse':>10s} {'rebuild':>10s} {'ratio':>8s}")
    for key, label in [("per_trial_s", "seconds per trial"), ("trials_per_min", "trials per minute"),
                       ("lgb_train_s", "LightGBM training, seconds (all trials)"),
                       ("datasets_s", "building lgb.Datasets inside trials, seconds (all trials)"),
                       ("initial_datasets_s", "building lgb.Datasets once before the study, seconds"),
                       ("outside_share", "share of trial time outside LightGBM training")]:
        a, b = reuse[key], rebuild[key]
        print(f"{label:58s} {a:10.3f} {b:10.3f} {b / a if a else float('nan'):7.2f}x")
    print(f"goal: outside share < 10% with Dataset reuse ({'met' if reuse['outside_share'] < 0.10 else 'NOT met'}: "
          f"{reuse['outside_share']:.1%}); OOF AUC {reuse['auc']:.4f} (planted signal), "
          f"pruned trials {reuse['pruned']}")


if __name__ == "__main__":
    main()
