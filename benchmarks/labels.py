"""Triple-barrier labelling speed: 1,000,000 events over a 1-second price path of 30 days with a
1-hour vertical barrier, against the per-event pandas loop of the usual reference shape (AFML
snippet 3.2, ``applyPtSlOnT1``), run on a sample of events and scaled to the million.

Run: ``.venv/bin/python benchmarks/labels.py [--events 1000000] [--days 30] [--sample 300]``.
Prints seconds (best of ``--repeat``; the first call's numba compilation is timed separately),
the ratio to the loop (goal >= 100x) and the absolute goal (< 5 s). Also checks the sample's
labels agree with the loop's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from timing import best_of

from atra_pipeline.core.labels.methods import daily_volatility, triple_barrier_labels

HOLD = pd.Timedelta(hours=1)
PT_SL = (1.0, 1.0)


def price_path(days: int, seed: int = 11) -> pd.Series:
    """A 1-second mid path: a random walk with 60% annualised-ish intraday noise and tick rounding."""
    n = days * 86_400
    rng = np.random.default_rng(seed)
    log_mid = np.log(60_000.0) + np.cumsum(rng.normal(0.0, 2.5e-5, n))
    mid = np.round(np.exp(log_mid), 2)
    return pd.Series(mid, index=pd.date_range("2024-07-01", periods=n, freq="1s"), name="mid")


def pandas_loop(close: pd.Series, events: pd.DatetimeIndex, target: pd.Series) -> pd.DataFrame:
    """The reference shape: for each event, slice the path to the vertical barrier, compute the
    returns and take the first touch of each horizontal barrier (AFML snippet 3.2)."""
    rows = {}
    for t0 in events:
        p0 = close.loc[:t0].iloc[-1]
        t_v = t0 + HOLD
        path = np.log(close.loc[t0:t_v].iloc[1:] / p0)
        width = target.loc[:t0].iloc[-1]
        pt_touch = path[path >= PT_SL[0] * width].index.min()
        sl_touch = path[path <= -PT_SL[1] * width].index.min()
        first = min([t for t in (pt_touch, sl_touch) if pd.notna(t)], default=pd.NaT)
        if pd.isna(first):
            rows[t0] = (t_v, "vertical")
        else:
            rows[t0] = (first, "pt" if first == pt_touch else "sl")
    return pd.DataFrame.from_dict(rows, orient="index", columns=["t1", "barrier"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sample", type=int, default=300, help="events timed in the pandas loop")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    close = price_path(args.days)
    # the 1-second volatility (EWM over an hour) scaled to the holding period: sqrt(3600) x
    target = (daily_volatility(close, span=3600, lookback=pd.Timedelta(seconds=1))
              * np.sqrt(HOLD / pd.Timedelta(seconds=1)))
    rng = np.random.default_rng(5)
    # events anywhere the target exists and the vertical barrier lies within the path
    usable = close.index[(close.index >= close.index[0] + 2 * HOLD) & (close.index <= close.index[-1] - HOLD)]
    events = pd.DatetimeIndex(np.sort(rng.choice(usable.to_numpy(), args.events, replace=False)))

    start = time.perf_counter()
    triple_barrier_labels(close, events[:1000], target, PT_SL, HOLD)
    first_call = time.perf_counter() - start  # includes numba compilation (cached on disk afterwards)
    fast = best_of(args.repeat, lambda: triple_barrier_labels(close, events, target, PT_SL, HOLD))
    labels = triple_barrier_labels(close, events, target, PT_SL, HOLD)

    sample = events[np.linspace(0, len(events) - 1, args.sample).astype(int)]
    start = time.perf_counter()
    reference = pandas_loop(close, sample, target)
    loop_s = time.perf_counter() - start
    loop_scaled = loop_s * len(events) / len(sample)
    ours = labels.loc[sample]
    agree = (ours["barrier"].to_numpy() == reference["barrier"].to_numpy()).mean()
    agree_t1 = (ours["t1"].to_numpy() == reference["t1"].to_numpy().astype(ours["t1"].dtype)).mean()

    shares = labels["barrier"].value_counts(normalize=True).round(3).to_dict()
    print(f"Triple-barrier labels: {len(events):,} events over a {args.days}-day 1-second path "
          f"({len(close):,} prices), vertical barrier {HOLD}, pt_sl {PT_SL} x the 1-second EWM volatility scaled "
          f"to 1 h; barriers hit {shares}; best of {args.repeat}")
    print(f"{'figure':60s} {'seconds':>10s} {'ratio':>12s}")
    print(f"{'(a) numba block-skipping scan, all events':60s} {fast:10.3f} {'1.0x':>12s}")
    print(f"{'    first call incl. numba compilation (1,000 events)':60s} {first_call:10.3f}")
    print(f"{f'(b) pandas per-event loop, {args.sample} events':60s} {loop_s:10.3f}")
    print(f"{'(b) scaled to all events':60s} {loop_scaled:10.1f} {f'{loop_scaled / fast:,.0f}x slower':>12s}")
    print(f"goals: < 5 s for the million ({'met' if fast < 5 else 'NOT met'}: {fast:.2f} s), "
          f">= 100x the loop ({'met' if loop_scaled / fast >= 100 else 'NOT met'}: {loop_scaled / fast:,.0f}x)")
    print(f"agreement with the loop on the {args.sample} sampled events: barrier {agree:.1%}, t1 {agree_t1:.1%}")


if __name__ == "__main__":
    main()
