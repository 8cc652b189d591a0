"""Purged k-fold, CPCV and walk-forward splits: hand-built label spans, and properties against a
brute-force overlap check."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atra_pipeline.core.models.cv import CombinatorialPurgedKFold, PurgedKFold, walk_forward_splits

T0 = pd.Timestamp("2024-08-08")


def events(minutes, hold_minutes) -> tuple[pd.DataFrame, pd.Series]:
    index = pd.DatetimeIndex([T0 + pd.Timedelta(minutes=m) for m in minutes])
    t1 = pd.Series(index + pd.to_timedelta(np.broadcast_to(hold_minutes, len(index)), unit="min"), index=index)
    return pd.DataFrame({"x": np.arange(len(index))}, index=index), t1


def test_purged_kfold_by_hand():
    X, t1 = events(range(10), 1.5)  # each label overlaps the next event's
    folds = list(PurgedKFold(5, t1).split(X))
    assert [list(test) for _, test in folds] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    # test [2, 3] spans [2, 4.5] min: event 1 ends at 2.5 and event 4 starts at 4: both purged
    assert list(folds[1][0]) == [0, 5, 6, 7, 8, 9]
    assert list(folds[0][0]) == [3, 4, 5, 6, 7, 8, 9]  # event 2 starts at 2 <= 2.5
    # a 1-minute embargo drops event 5 (starts at 5, within 1 min after the span's end 4.5)
    embargoed = list(PurgedKFold(5, t1, embargo=pd.Timedelta(minutes=1)).split(X))
    assert list(embargoed[1][0]) == [0, 6, 7, 8, 9]
    # as a fraction: 1/9 of the 9-minute span is the same minute
    assert [list(a) for a, _ in PurgedKFold(5, t1, embargo=1 / 9).split(X)] == [list(a) for a, _ in embargoed]


def test_non_overlapping_labels_lose_nothing():
    X, t1 = events(range(10), 0.5)
    for train, test in PurgedKFold(5, t1).split(X):
        assert sorted([*train, *test]) == list(range(10))


def test_bad_input_is_named():
    X, t1 = events(range(10), 1)
    with pytest.raises(ValueError, match="indexed like X"):
        list(PurgedKFold(3, t1.iloc[:-1]).split(X))
    with pytest.raises(ValueError, match="time order"):
        list(PurgedKFold(3, t1).split(X.iloc[::-1]))
    with pytest.raises(ValueError, match="embargo"):
        list(PurgedKFold(3, t1, embargo=1.5).split(X))


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(0, 5), min_size=6, max_size=60), holds=st.data(),
       n_splits=st.integers(2, 6), embargo=st.integers(0, 4))
def test_purged_kfold_properties_against_brute_force(gaps, holds, n_splits, embargo):
    minutes = np.cumsum(gaps)
    hold = holds.draw(st.lists(st.integers(0, 12), min_size=len(minutes), max_size=len(minutes)))
    X, t1 = events(minutes, hold)
    if len(X) < n_splits:
        return
    t0v, t1v = X.index, t1.to_numpy()
    tested = []
    for train, test in PurgedKFold(n_splits, t1, embargo=pd.Timedelta(minutes=embargo)).split(X):
        assert not set(train) & set(test)
        tested += list(test)
        span_start, span_end = t0v[test[0]], t1v[test].max()
        for j in range(len(X)):
            if j in test:
                continue
            leaks = t0v[j] <= span_end and t1v[j] >= span_start
            in_embargo = span_end < t0v[j] <= span_end + pd.Timedelta(minutes=embargo)
            assert (j in train) == (not leaks and not in_embargo), j  # purged exactly the leaking ones
    assert sorted(tested) == list(range(len(X)))  # every event tested once


def test_cpcv_splits_and_paths():
    X, t1 = events(range(12), 0.5)
    cv = CombinatorialPurgedKFold(6, 2, t1)
    splits = list(cv.split(X))
    assert cv.get_n_splits() == len(splits) == comb(6, 2) and cv.n_paths == comb(5, 1) == 5
    times_tested = np.zeros(12, dtype=int)
    for train, test in splits:
        times_tested[test] += 1
        assert not set(train) & set(test)
    assert (times_tested == 5).all()
    paths = cv.paths()
    assert paths.shape == (5, 6)
    for p in range(5):  # each path has one prediction per group, from a split that tested it
        for g in range(6):
            assert g in cv.combinations[paths[p, g]]
    assert len({tuple(col) for col in paths.T}) == 6 and all(len(set(paths[:, g])) == 5 for g in range(6))


def test_cpcv_purges_around_every_test_block():
    X, t1 = events(range(12), 1.5)  # groups of 2: [0,1] [2,3] [4,5] [6,7] [8,9] [10,11]
    cv = CombinatorialPurgedKFold(6, 2, t1)
    train, test = next((tr, te) for (tr, te), c in zip(cv.split(X), cv.combinations) if c == (1, 4))
    assert list(test) == [2, 3, 8, 9]
    # block [2, 3] spans [2, 4.5]: purges 1 and 4; block [8, 9] spans [8, 10.5]: purges 7 and 10
    assert list(train) == [0, 5, 6, 11]


def test_walk_forward_by_hand():
    X, t1 = events(range(0, 60, 5), 7)  # events every 5 min, labels 7 min long
    splits = list(walk_forward_splits(X.index, pd.Timedelta(minutes=20), pd.Timedelta(minutes=10), None, t1))
    first_train, first_test = splits[0]
    # test [20, 30) = events 4, 5; train [0, 20) whose labels end before 20: 0, 5, 10 (15 ends at 22)
    assert list(first_test) == [4, 5] and list(first_train) == [0, 1, 2]
    assert [list(te) for _, te in splits] == [[4, 5], [6, 7], [8, 9], [10, 11]]
    assert list(splits[1][0]) == [2, 3, 4]  # rolling: [10, 30)
    expanding = list(walk_forward_splits(X.index, None, pd.Timedelta(minutes=10), None, t1))
    assert list(expanding[-1][0]) == list(range(0, 9))  # [0, 50), ends before 50: up to event 8 (40 + 7)
    gap = list(walk_forward_splits(X.index, pd.Timedelta(minutes=20), pd.Timedelta(minutes=10), None, t1,
                                   embargo=pd.Timedelta(minutes=10)))
    assert list(gap[0][0]) == [0, 1]  # events starting within 10 min before the test window dropped
    for train, test in splits:
        assert t1.iloc[train].max() < X.index[test[0]]


def test_the_leakage_audit_finds_unpurged_and_shared_events():
    X, t1 = events(range(10), 1.5)
    from atra_pipeline.core.models.cv import leakage

    unpurged = [(np.setdiff1d(np.arange(10), test), test) for test in np.array_split(np.arange(10), 5)]
    assert leakage(X.index, t1, unpurged)["overlapping_labels"] > 0
    assert leakage(X.index, t1, [(np.array([0, 1, 2]), np.array([2, 3]))])["trained_and_tested"] == 1
    assert leakage(X.index, t1, PurgedKFold(5, t1).split(X)) == {"trained_and_tested": 0, "overlapping_labels": 0}
