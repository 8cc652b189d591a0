"""The SQL book-shape macros against a brute-force reading of the same rules (hypothesis)."""

from __future__ import annotations

import math

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atra_pipeline.core.storage.database import prepare

LEVEL = st.one_of(st.none(), st.sampled_from([0.0, -1.0, math.inf, math.nan]), st.integers(1, 6).map(float))


@pytest.fixture(scope="module")
def db():
    conn = duckdb.connect()
    prepare(conn)
    yield conn
    conn.close()


def ordered_brute(px: list, descending: bool) -> bool:
    present = [p for p in px if p is not None]
    if px[0] is None or any(p is None for p in px[:len(present)]):
        return False  # best level missing, or a hole before a present level
    pairs = zip(present, present[1:])
    return all((a > b) if descending else (a < b) for a, b in pairs)


def sizes_brute(px: list, sz: list) -> bool:
    def good(x):
        return x is not None and math.isfinite(x) and x > 0
    return all((p is None) == (s is None) and (p is None or (good(p) and good(s))) for p, s in zip(px, sz))


@settings(max_examples=300, deadline=None)
@given(st.lists(LEVEL, min_size=10, max_size=10), st.booleans())
def test_book_side_ordered_matches_brute_force(db, px, descending):
    got = db.execute("SELECT book_side_ordered($px::DOUBLE[], $d)", {"px": px, "d": descending}).fetchall()[0][0]
    if any(p is not None and math.isnan(p) for p in px):
        return  # NaN ordering is the NaN-price rule's business (ingest and sizes check refuse it)
    assert got is not None and got == ordered_brute(px, descending)  # never NULL: NOT NULL would hide a row


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(LEVEL, LEVEL), min_size=10, max_size=10))
def test_book_side_sizes_ok_matches_brute_force(db, levels):
    px, sz = [p for p, _ in levels], [s for _, s in levels]
    got = db.execute("SELECT book_side_sizes_ok($px::DOUBLE[], $sz::DOUBLE[])", {"px": px, "sz": sz}).fetchall()[0][0]
    assert got is not None and got == sizes_brute(px, sz)


def test_hand_cases(db):
    def ordered(px, d):
        return db.execute("SELECT book_side_ordered($px::DOUBLE[], $d)", {"px": px, "d": d}).fetchall()[0][0]
    assert ordered([3.0, 2.0, 1.0, None], True) and ordered([1.0, 2.0, None, None], False)
    assert not ordered([3.0, 3.0, None], True)       # equal prices are not strictly descending
    assert not ordered([3.0, None, 1.0], True)       # a hole before a present level
    assert not ordered([None, None, None], False)    # an empty side has no best level
