"""The random generator (patternc.rng) against a scalar transcription of its documented algorithm."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from patternc import rng

M64 = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _row(salt: int, seed: int, row: int, pool: int, r: int) -> list[int]:
    """Floyd's algorithm for one row, fed by SplitMix64 over (salt, seed, row, pool, step)."""
    k = max(0, min(r, pool))
    chosen: list[int] = []
    for s in range(k):
        t = pool - k + s
        h = _splitmix((salt ^ (seed & M64)) & M64)
        for v in (row & M64, pool & M64, t):
            h = _splitmix(h ^ v)
        x = h % (t + 1)
        chosen.append(t if x in chosen else x)
    return sorted(chosen)


@given(st.integers(-(1 << 63), (1 << 63) - 1), st.lists(st.integers(-(1 << 40), 1 << 40), max_size=20),
       st.integers(0, 40), st.integers(0, 12), st.sampled_from([rng.SALT_KEYS, rng.SALT_BLOCKS]))
def test_sample_rows_is_floyd_over_splitmix(seed: int, rows: list[int], pool: int, r: int, salt: int) -> None:
    got = rng.sample_rows(seed, np.array(rows, dtype=np.int64), pool, r, salt)
    assert got.shape == (len(rows), max(0, min(r, pool)))
    assert got.tolist() == [_row(salt, seed, row, pool, r) for row in rows]


@given(st.integers(1, 12), st.integers(0, 30), st.data())
def test_row_sort_and_membership(k: int, n: int, data: st.DataObject) -> None:
    # the short-row helpers (sorting networks, column-wise membership) equal numpy's general forms
    vals = data.draw(st.lists(st.integers(-5, 5), min_size=n * k, max_size=n * k))
    m = np.array(vals, dtype=np.int64).reshape(n, k)
    got = m.copy()
    rng._sort_rows(got)
    np.testing.assert_array_equal(got, np.sort(m, axis=1))
    x = np.array(data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), dtype=np.int64)
    for c in range(k + 1):
        np.testing.assert_array_equal(rng._taken(m[:, :c], x), (m[:, :c] == x[:, None]).any(axis=1))
