"""Cross-validation for labels that span time: purged k-fold, combinatorial purged k-fold (CPCV)
and walk-forward splits (Lopez de Prado, *Advances in Financial Machine Learning*, ch. 7 and 12).

A label of the event at :math:`t_{0,i}` is only known at :math:`t_{1,i}`. A training event whose
interval :math:`[t_{0,i}, t_{1,i}]` overlaps the test span leaks the test labels into training:
it is *purged*. Features computed over trailing windows make the events just after a test span
serially correlated with it: those within the *embargo* are dropped from training too.

The splitters follow scikit-learn (``split(X, y=None, groups=None)`` yields positional
``(train, test)`` arrays; ``get_n_splits``). ``X`` is indexed by event time in time order and
``t1`` is a Series on the same index.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

import numpy as np
import pandas as pd


def _as_timedelta(embargo: float | pd.Timedelta, index: pd.DatetimeIndex) -> pd.Timedelta:
    """``embargo`` as a Timedelta: a float is a fraction of the events' time span."""
    if isinstance(embargo, (pd.Timedelta, np.timedelta64)) or hasattr(embargo, "total_seconds"):
        return pd.Timedelta(embargo)
    if not 0 <= float(embargo) < 1:
        raise ValueError(f"embargo={embargo}: a fraction of the time span in [0, 1) or a Timedelta")
    return (index[-1] - index[0]) * float(embargo) if len(index) else pd.Timedelta(0)


def _check(index: pd.DatetimeIndex, t1: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(index, pd.DatetimeIndex) or not index.is_monotonic_increasing:
        raise ValueError("X must be indexed by event time in time order (a sorted DatetimeIndex)")
    if not t1.index.equals(index):
        raise ValueError("t1 must be indexed like X (one label end per event)")
    t0 = index.as_unit("ns").asi8
    end = pd.DatetimeIndex(t1.to_numpy()).as_unit("ns").asi8
    if (end < t0).any():
        raise ValueError(f"t1 before its event at {index[np.argmax(end < t0)]}")
    return t0, end


def purged_train(t0: np.ndarray, t1: np.ndarray, test: np.ndarray, embargo_ns: int) -> np.ndarray:
    """Training positions for the test positions ``test``: all others, minus those whose
    ``[t0, t1]`` overlaps a contiguous block of the test set's ``[first t0, max t1]`` and those
    starting within ``embargo_ns`` after such a block.
    """
    keep = np.ones(t0.size, dtype=bool)
    keep[test] = False
    for start, end in _test_spans(t0, t1, test):
        embargoed = (t0 > end) & (t0 <= end + embargo_ns)
        keep &= ~(_overlaps(t0, t1, start, end) | embargoed)
    return np.flatnonzero(keep)


def _test_spans(t0: np.ndarray, t1: np.ndarray, test: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(first t0, max t1)`` of each contiguous run of the positions ``test``: each run is one
    test span, with its own purge and embargo."""
    test = np.sort(test)
    for block in np.split(test, np.flatnonzero(np.diff(test) > 1) + 1):
        if block.size:
            yield t0[block[0]], t1[block].max()


def _overlaps(t0: np.ndarray, t1: np.ndarray, start: int, end: int) -> np.ndarray:
    """Whether each label interval ``[t0, t1]`` meets the span ``[start, end]``."""
    return (t0 <= end) & (t1 >= start)


class PurgedKFold:
    """K-fold with contiguous test folds, purging and embargo (AFML 7.4, snippet 7.3).

    Parameters
    ----------
    n_splits : int
        Number of contiguous test folds (>= 2); every event is tested exactly once.
    t1 : pandas.Series
        Label end time per event, indexed by event time like ``X``.
    embargo : float or pandas.Timedelta
        Training events starting within this time after a test fold's last label end are
        dropped; a float is a fraction of the events' time span.
    """

    def __init__(self, n_splits: int, t1: pd.Series, embargo: float | pd.Timedelta = 0.0):
        if n_splits < 2:
            raise ValueError(f"n_splits={n_splits}: at least 2")
        self.n_splits, self.t1, self.embargo = n_splits, t1, embargo

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        t0, t1 = _check(X.index, self.t1)
        if t0.size < self.n_splits:
            raise ValueError(f"{t0.size} events cannot make {self.n_splits} folds")
        embargo = _as_timedelta(self.embargo, X.index).value
        for test in np.array_split(np.arange(t0.size), self.n_splits):
            yield purged_train(t0, t1, test, embargo), test


class CombinatorialPurgedKFold:
    """Combinatorial purged cross-validation, CPCV (AFML 12.4).

    The events are cut into ``n_splits`` contiguous groups; each of the C(N, k) combinations of
    ``n_test_splits`` groups is one split's test set, trained on the rest with purging and
    embargo around every test block. Every group is tested C(N-1, k-1) times, so the out-of-sample
    predictions form that many complete backtest paths (:meth:`paths`).
    """

    def __init__(self, n_splits: int, n_test_splits: int, t1: pd.Series, embargo: float | pd.Timedelta = 0.0):
        if not 1 <= n_test_splits < n_splits:
            raise ValueError(f"n_test_splits={n_test_splits}: between 1 and n_splits - 1 = {n_splits - 1}")
        self.n_splits, self.n_test_splits, self.t1, self.embargo = n_splits, n_test_splits, t1, embargo

    @property
    def combinations(self) -> list[tuple[int, ...]]:
        """The test groups of each split, in split order."""
        return list(combinations(range(self.n_splits), self.n_test_splits))

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return len(self.combinations)

    @property
    def n_paths(self) -> int:
        """C(N-1, k-1) = k/N C(N, k): how many complete backtest paths the splits form."""
        return len(self.combinations) * self.n_test_splits // self.n_splits

    def groups(self, n_events: int) -> list[np.ndarray]:
        return np.array_split(np.arange(n_events), self.n_splits)

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        t0, t1 = _check(X.index, self.t1)
        if t0.size < self.n_splits:
            raise ValueError(f"{t0.size} events cannot make {self.n_splits} groups")
        embargo = _as_timedelta(self.embargo, X.index).value
        parts = self.groups(t0.size)
        for combo in self.combinations:
            test = np.concatenate([parts[g] for g in combo])
            yield purged_train(t0, t1, test, embargo), test

    def paths(self) -> np.ndarray:
        """``paths[p, g]``: the split whose prediction of group ``g`` belongs to path ``p``; path
        ``p`` takes, for each group, the ``p``-th split (in split order) that tests it."""
        out = np.empty((self.n_paths, self.n_splits), dtype=int)
        seen = np.zeros(self.n_splits, dtype=int)
        for split, combo in enumerate(self.combinations):
            for g in combo:
                out[seen[g], g] = split
                seen[g] += 1
        return out


def walk_forward_splits(index: pd.DatetimeIndex, train: pd.Timedelta | None, test: pd.Timedelta,
                        step: pd.Timedelta | None, t1: pd.Series, embargo: pd.Timedelta = pd.Timedelta(0),
                        first_test: pd.Timestamp | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Walk-forward splits: train on the past, test on the next window, move on by ``step``.

    Test windows ``[s, s + test)`` for ``s = start + train, start + train + step, ...`` (the first
    test window starts ``train`` after the first event; with ``train=None`` the training window
    expands from the first event and the first test window starts after one ``test`` length).
    Training events are those in ``[s - train, s)`` (or ``[start, s)``) whose label ends before
    ``s`` (purging: a label still open at ``s`` would see the test window) and that start at least
    ``embargo`` before ``s`` (a gap for features whose look-back reaches into the test window's
    neighbourhood). ``step`` defaults to ``test`` (back-to-back test windows); ``first_test`` sets
    where the first test window starts instead.
    """
    t0, end = _check(index, t1)
    step = test if step is None else pd.Timedelta(step)
    if len(index) == 0:
        return
    first = index[0]
    s = pd.Timestamp(first_test) if first_test is not None else \
        first + (pd.Timedelta(train) if train is not None else pd.Timedelta(test))
    while s <= index[-1]:
        s_ns, e_ns = s.value, (s + pd.Timedelta(test)).value
        test_pos = np.flatnonzero((t0 >= s_ns) & (t0 < e_ns))
        lo = first.value if train is None else (s - pd.Timedelta(train)).value
        train_pos = np.flatnonzero((t0 >= lo) & (t0 < s_ns - pd.Timedelta(embargo).value) & (end < s_ns))
        if test_pos.size and train_pos.size:
            yield train_pos, test_pos
        s = s + step


def leakage(index: pd.DatetimeIndex, t1: pd.Series, folds) -> dict[str, int]:
    """Audit of ``(train, test)`` folds: events both trained and tested on, and training events
    whose label interval overlaps a contiguous test block's span (both must be 0)."""
    t0, end = _check(index, t1)
    both = overlapping = 0
    for train, test in folds:
        both += np.intersect1d(train, test).size
        for start, stop in _test_spans(t0, end, test):
            overlapping += int(_overlaps(t0[train], end[train], start, stop).sum())
    return {"trained_and_tested": int(both), "overlapping_labels": int(overlapping)}
