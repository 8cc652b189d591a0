"""What honest evaluation costs: the walk-forward stage beside one k-fold study on the same data,
a placebo study, and LightGBM's threads.

Events: ``--events`` over ``--days`` days with the registry's feature columns (random, one of them
weakly informative) and 10-minute labels. Printed in one run, each beside its baseline:

- the walk-forward stage (one fit per period with the tuned hyperparameters) against a purged
  k-fold study of the same trials over all the events (the evaluation the gate used before);
- the whole candidate (study on the tuning window + walk-forward) against that k-fold study;
- one placebo study (labels permuted by block, trained like the candidate) against the candidate;
- one k-fold study with LightGBM on ``--threads`` threads against one thread.

Run: ``.venv/bin/python benchmarks/walk_forward.py [--events 60000] [--days 4] [--trials 10]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from atra_pipeline.core.gate.placebo import train_placebo
from atra_pipeline.core.models.threads import usable_cores
from atra_pipeline.core.models.training import TrainingSet, TrainingSettings, model_features, train_candidate


def events(n: int, days: int, seed: int = 3) -> TrainingSet:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-08-02", periods=n, freq=pd.Timedelta(days=days) / n)
    columns = model_features()
    X = pd.DataFrame(rng.normal(size=(n, len(columns))), index=index, columns=columns)
    y = (rng.random(n) < 0.5 + 0.05 * np.tanh(X[columns[0]].to_numpy())).astype(int)
    return TrainingSet(X, y, np.ones(n), pd.Series(index + pd.Timedelta(minutes=10), index=index),
                       np.where(y == 1, 0.001, -0.001), np.array(["BTCUSDT"] * n))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()
    data = events(args.events, args.days)
    settings = TrainingSettings(trials=args.trials, num_threads=1, max_estimators=200)
    candidate, candidate_s = timed(lambda: train_candidate(data, settings, lookback_s=3600))
    # nearly every event in the study: one purged k-fold study over the data, as before
    kfold, kfold_s = timed(lambda: train_candidate(data, replace(settings, tuning_fraction=0.97), lookback_s=3600))
    _, placebo_s = timed(lambda: train_placebo(data, settings, 3600, 0))
    threaded = replace(settings, tuning_fraction=0.97, trials=4, num_threads=args.threads)
    _, many_s = timed(lambda: train_candidate(data, threaded, lookback_s=3600))
    _, one_s = timed(lambda: train_candidate(data, replace(threaded, num_threads=1), lookback_s=3600))
    wf_s, study_s = candidate.timings["walk_forward_s"], kfold.timings["study_s"]
    m = candidate.metrics
    print(f"{len(data.y)} events over {args.days} days, {len(data.X.columns)} features, {args.trials} trials; "
          f"walk-forward: {m['walk_forward_periods']} periods of {m['walk_forward_period_s'] / 3600:g} h after "
          f"{m['tuning_events']} tuning events")
    rows = [
        ("walk-forward stage (fits per period)", wf_s, "k-fold study over all events", study_s),
        ("candidate: study on tuning window + walk-forward", candidate_s, "k-fold candidate over all events", kfold_s),
        ("one placebo study", placebo_s, "the candidate", candidate_s),
        (f"4-trial study, {args.threads} LightGBM threads", many_s, "1 thread", one_s),
    ]
    for name, seconds, base_name, base in rows:
        print(f"{name:52s} {seconds:8.2f} s   vs {base_name:34s} {base:8.2f} s   ratio {seconds / base:6.3f}")


if __name__ == "__main__":
    main()
