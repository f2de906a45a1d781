"""Tables of periodic patterns of ``d`` alone, straight from one state per block diagonal.

With square blocks (``block_q == block_k == b``) and ``(nk - nq) % b == 0``, a full-size tile
``(qb, kb)`` holds exactly the ``d`` in ``[(qb - kb) b + off - b + 1, (qb - kb) b + off + b - 1]``:
the state of a pattern of ``d`` alone depends on the diagonal ``qb - kb`` only. One prefix sum
over ``d`` gives the states of all ``R + C - 1`` diagonals, and row ``qb`` of the forward table
is ``qb - delta`` for the non-empty diagonals ``delta`` in range; short edge tiles (a last row or
column shorter than ``b``) are decided one by one. This costs the size of the tables, where run
lists would cost as many runs as blocks for strides longer than a tile (Sparse Transformer's
``strided(sqrt(n))``: about 1,000 runs per row at a million tokens).
"""

from __future__ import annotations

import numpy as np

from patternc import ir
from patternc.lower.blocks import Geometry
from patternc.lower.combine import _d_count_states, d_states, dependence
from patternc.lower.rle import EMPTY, FULL, PARTIAL
from patternc.lower.tables import RunArrays, as_tables
from patternc.plan import BlockTables

MIN_DIAGONAL_RUNS = 64
"""Below this many state changes along the diagonals, run lists are small: keep them."""


def diagonals(node: ir.Node, g: Geometry, min_runs: int | None = None) -> np.ndarray | None:
    """States of the full-size tiles per diagonal ``qb - kb = delta`` (index ``delta + C - 1``),
    or None when the pattern or geometry does not qualify or the diagonals change fewer than
    ``min_runs`` times."""
    if not (dependence(node) <= {"d"} and g.bq == g.bk and g.off % g.bq == 0 and g.nqb and g.nkb):
        return None
    b = g.bq
    delta = np.arange(-(g.nkb - 1), g.nqb, dtype=np.int64)
    st = _d_count_states(node, g, delta * b + g.off - (b - 1), delta * b + g.off + (b - 1))
    return st if alternating(st, MIN_DIAGONAL_RUNS if min_runs is None else min_runs) else None


def alternating(st: np.ndarray | None, min_runs: int | None = None) -> bool:
    """The diagonal states change at least ``min_runs`` (default ``MIN_DIAGONAL_RUNS``) times."""
    need = MIN_DIAGONAL_RUNS if min_runs is None else min_runs
    return st is not None and int((st[1:] != st[:-1]).sum()) >= need


def progressions(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ascending ``D`` greedily into maximal arithmetic progressions: their first indices
    (with ``D.size`` appended) and steps. Periodic diagonals (``strided``) are one or two."""
    firsts, steps = [], []
    i, n = 0, int(D.size)
    diff = np.diff(D)
    # ends[k]: the index one past the run of equal differences that contains difference k
    change = np.flatnonzero(diff[1:] != diff[:-1]) + 1
    ends = np.repeat(np.append(change, diff.size), np.diff(np.concatenate([[0], change, [diff.size]])))
    while i < n:
        firsts.append(i)
        if i == n - 1:
            steps.append(1)
            break
        steps.append(int(diff[i]))
        i = int(ends[i]) + 1
    return np.array([*firsts, n], dtype=np.int64), np.array(steps, dtype=np.int64)


def _rows(D: np.ndarray, lo: np.ndarray, hi: np.ndarray, base: np.ndarray, forward: bool) -> RunArrays:
    """Runs of rows ``base`` listing ``base - D[k]`` (forward, ``k`` descending) or ``base + D[k]``
    (backward, ascending) for ``k in [lo, hi)``: one run per progression of ``D`` a row meets."""
    z = np.zeros(0, dtype=np.int64)
    some = hi > lo
    if D.size == 0 or not some.any():
        return z, z, z, z, z, z
    base, lo, hi = base[some], lo[some], hi[some]
    first, step = progressions(D)
    pid = np.searchsorted(first, np.arange(D.size), side="right") - 1
    p0, p1 = pid[lo], pid[hi - 1] + 1
    n = p1 - p0
    row = np.repeat(base, n)
    p = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n - p0, n)
    a = np.maximum(first[p], np.repeat(lo, n))
    b = np.minimum(first[p + 1], np.repeat(hi, n))
    count = b - a
    if forward:  # k descending: the last progression comes first, each read backwards
        pos = np.repeat(hi, n) - b
        start = row - D[b - 1]
        order = np.lexsort((pos, row))
    else:
        pos = a - np.repeat(lo, n)
        start = row + D[a]
        order = np.arange(row.size)
    cols = (np.zeros_like(row), row, pos, start, count, step[p])
    return tuple(c[order] for c in cols)  # type: ignore[return-value]


def _direction(st: np.ndarray, g: Geometry, state: int, forward: bool, edge_main: np.ndarray,
               edge_cross: np.ndarray) -> RunArrays:
    """Table runs of one state. Rows are query blocks (``forward``) or key blocks;
    ``edge_main``: states of the short last column (forward) / row (backward) per regular row;
    ``edge_cross``: states of the short last row (forward) / column, all its entries."""
    R, C = (g.nqb, g.nkb) if forward else (g.nkb, g.nqb)
    short_r = (g.nq % g.bq != 0) if forward else (g.nk % g.bk != 0)
    short_c = (g.nk % g.bk != 0) if forward else (g.nq % g.bq != 0)
    Rr, Cr = R - short_r, C - short_c  # regular rows / columns
    D = np.flatnonzero(st == state).astype(np.int64) - (g.nkb - 1)  # diagonals qb - kb, ascending
    rows = np.arange(Rr, dtype=np.int64)
    if forward:  # kb = qb - delta, kb in [0, Cr): delta in [qb - Cr + 1, qb]
        lo, hi = np.searchsorted(D, rows - Cr + 1), np.searchsorted(D, rows, side="right")
    else:  # qb = kb + delta, qb in [0, Cr): delta in [-kb, Cr - 1 - kb]
        lo, hi = np.searchsorted(D, -rows), np.searchsorted(D, Cr - 1 - rows, side="right")
    main = _rows(D, lo, hi, rows, forward)
    # a short last column: one more entry at the end of the rows whose edge block is in state
    extra = np.flatnonzero(edge_main[:Rr] == state) if short_c else np.zeros(0, dtype=np.int64)
    # a short last row: its entries one by one
    cross = np.flatnonzero(edge_cross == state) if short_r else np.zeros(0, dtype=np.int64)
    one = np.ones(extra.size + cross.size, dtype=np.int64)
    tail = (0 * one, np.concatenate([extra, np.full(cross.size, Rr)]),
            np.concatenate([(hi - lo)[extra], np.arange(cross.size)]),
            np.concatenate([np.full(extra.size, C - 1), cross]), one, one)
    cols = [np.concatenate([m, t]) for m, t in zip(main, tail)]
    order = np.lexsort((cols[2], cols[1]))
    return tuple(c[order] for c in cols)  # type: ignore[return-value]


def tables(node: ir.Node, g: Geometry, st: np.ndarray) -> tuple[dict[int, RunArrays], dict[int, RunArrays]]:
    """Forward and backward ``{state: runs}`` for PARTIAL and FULL from diagonal states."""
    R, C = g.nqb, g.nkb
    last_col = d_states(node, g, np.arange(R, dtype=np.int64), np.full(R, C - 1, dtype=np.int64))
    last_row = d_states(node, g, np.full(C, R - 1, dtype=np.int64), np.arange(C, dtype=np.int64))
    fwd, bwd = {}, {}
    for state in (PARTIAL, FULL):
        fwd[state] = _direction(st, g, state, True, last_col, last_row)
        bwd[state] = _direction(st, g, state, False, last_row, last_col)
    return fwd, bwd


def block_tables(R: int, parts: list[dict[int, RunArrays]]) -> BlockTables:
    """Stack per-group ``{state: runs}`` (group 0 each) into BlockTables of ``R`` rows."""
    return as_tables(R, [{s: (np.full(r[0].size, k, dtype=np.int64), *r[1:]) for s, r in p.items()}
                         for k, p in enumerate(parts)])


__all__ = ["EMPTY", "block_tables", "diagonals", "progressions", "tables"]
