"""Interval sets (patterns of one coordinate) against Python sets."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from patternc import ir
from patternc.lower.intervals import IntervalSet, evaluate, interval_count
from patternc.reference import mask_np
from tests.strategies import d_patterns

LO, HI = -5, 40
spans = st.lists(st.tuples(st.integers(-8, 45), st.integers(0, 9)), max_size=5)


def _make(xs: list[tuple[int, int]]) -> tuple[IntervalSet, set[int]]:
    s = IntervalSet.of(LO, HI, np.array([a for a, _ in xs], dtype=np.int64),
                       np.array([a + n for a, n in xs], dtype=np.int64))
    members = {v for a, n in xs for v in range(a, a + n) if LO <= v < HI}
    return s, members


def _members(s: IntervalSet) -> set[int]:
    assert (s.starts < s.ends).all() and (s.starts[1:] > s.ends[:-1]).all(), "sorted, disjoint, not touching"
    return {v for a, b in zip(s.starts.tolist(), s.ends.tolist()) for v in range(a, b)}


@given(spans, spans)
def test_set_algebra(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    sa, ma = _make(a)
    sb, mb = _make(b)
    assert _members(sa) == ma
    assert _members(sa.union(sb)) == ma | mb
    assert _members(sa.intersect(sb)) == ma & mb
    assert _members(sa.complement()) == set(range(LO, HI)) - ma
    xs = np.arange(LO - 2, HI + 3)
    assert sa.cover(xs).tolist() == [sum(1 for v in ma if v < x) for x in xs.tolist()]



@given(d_patterns, st.integers(-60, 0), st.integers(1, 80))
def test_offsets_of_d_patterns(node: ir.Node, lo: int, width: int) -> None:
    # patterns of d = p - j alone as sets of offsets d, against the reference predicate
    d = np.arange(lo, lo + width)
    want = mask_np(node, 200, 200)[d + 100, 100]  # query p = 100 + d, key 100
    got = evaluate(node, lo, lo + width, 200)
    assert _members(got) == set(d[want].tolist())
    assert interval_count(node, lo, lo + width) >= 1
