"""Run-length block matrices (patternc.lower.rle) against dense numpy matrices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patternc.lower import rle
from patternc.lower.rle import EMPTY, FULL, PARTIAL

states = st.sampled_from([EMPTY, EMPTY, EMPTY, PARTIAL, FULL])


@st.composite
def matrices(draw: st.DrawFn) -> np.ndarray:
    R, C = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    return np.array(draw(st.lists(states, min_size=R * C, max_size=R * C)), dtype=np.uint8).reshape(R, C)


@pytest.fixture(autouse=True)
def runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # small grids take dense shortcuts: force the run-built paths that long sequences take
    monkeypatch.setattr(rle, "DENSE_CELLS", 0)
    monkeypatch.setattr(rle, "DENSE_MAX_CELLS", 0)
    monkeypatch.setattr(rle, "SPLICE_RATIO", rle.SPLICE_RATIO)  # restored after each test
    monkeypatch.setattr(rle, "SPLICE_SLICES", rle.SPLICE_SLICES)


def _dense(a: rle.BlockRLE) -> np.ndarray:
    assert a.start.size and (a.start[np.r_[True, a.row[1:] != a.row[:-1]]] == 0).all(), "rows start at 0"
    return rle.to_dense(a)


@given(matrices())
def test_every_transpose_path_is_the_transpose(m: np.ndarray) -> None:
    a = rle.from_dense(m)
    for t in (rle.transpose(a), rle._transpose_blocks(a)):
        np.testing.assert_array_equal(_dense(t), m.T)
        # coalesced: no two neighbours of a row share a state
        same_row = t.row[1:] == t.row[:-1]
        assert not (same_row & (t.state[1:] == t.state[:-1])).any()


@given(matrices(), st.data())
def test_single_blocks_and_split_runs(m: np.ndarray, data: st.DataObject) -> None:
    R, C = m.shape
    cells = data.draw(st.lists(st.tuples(st.integers(0, R - 1), st.integers(0, C - 1)), unique=True,
                               max_size=12))
    painted = np.array(data.draw(st.lists(st.sampled_from([PARTIAL, FULL]), min_size=len(cells),
                                          max_size=len(cells))), dtype=np.uint8)
    rows = np.array([r for r, _ in cells], dtype=np.int64)
    cols = np.array([c for _, c in cells], dtype=np.int64)
    want = np.full((R, C), EMPTY, dtype=np.uint8)
    want[rows, cols] = painted
    blocks = rle.single_blocks(R, C, rows, cols, painted)
    np.testing.assert_array_equal(_dense(blocks), want)
    assert blocks.runs() == rle.from_dense(want).runs(), "neighbouring equal blocks form one run"
    # splitting restates every block of the selected runs and keeps the others whole
    # (all rows rebuilt, or only the affected rows spliced back in, by slices or by inserts)
    a = rle.from_dense(m)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=a.runs(), max_size=a.runs())), dtype=bool)
    restate = {(int(r), int(c)): int(s) for (r, c), s in zip(cells, painted)}
    want = m.copy()
    rows, cols, _ = rle.expand(a, mask)
    for r, c in zip(rows, cols):
        want[r, c] = restate.get((int(r), int(c)), EMPTY)
    for ratio, slices in ((0, 64), (1 << 30, 64), (1 << 30, 0)):
        rle.SPLICE_RATIO, rle.SPLICE_SLICES = ratio, slices
        split = rle.split_runs(a, mask, lambda r, c: np.array([restate.get((int(x), int(y)), EMPTY)
                                                               for x, y in zip(r, c)], dtype=np.uint8))
        np.testing.assert_array_equal(_dense(split), want)
        assert split.runs() == rle.from_dense(want).runs(), "rebuilt rows are coalesced"
