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
    if int((st[1:] != st[:-1]).sum()) < (MIN_DIAGONAL_RUNS if min_runs is None else min_runs):
        return None
    return st


def _rows(D: np.ndarray, first: np.ndarray, count: np.ndarray, base: np.ndarray, sign: int,
          extra: np.ndarray, extra_col: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``idx[r, t] = base[r] + sign * D[first[r] + sign * t]`` for ``t < count[r]`` (forward:
    ``kb = qb - delta`` over descending deltas; backward: ``qb = kb + delta`` over ascending
    ones; indices ascending either way), then ``extra_col`` appended where ``extra`` holds."""
    R = base.size
    num = count + extra
    idx = np.zeros((R, width), dtype=np.int32)
    if width == 0 or R == 0:
        return num, idx
    if D.size:
        t = np.arange(width, dtype=np.int64)[None, :]
        src = np.clip(first[:, None] + sign * t, 0, D.size - 1)
        valid = t < count[:, None]
        idx[valid] = (base[:, None] + sign * D[src])[valid]
    r = np.flatnonzero(extra)
    idx[r, count[r]] = extra_col
    return num, idx


def _direction(st: np.ndarray, g: Geometry, state: int, forward: bool, edge_main: np.ndarray,
               edge_cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``num`` / ``idx`` of one state. Rows are query blocks (``forward``) or key blocks;
    ``edge_main``: states of the short last column (forward) / row (backward) per regular row;
    ``edge_cross``: states of the short last row (forward) / column, all its entries."""
    R, C = (g.nqb, g.nkb) if forward else (g.nkb, g.nqb)
    short_r = (g.nq % g.bq != 0) if forward else (g.nk % g.bk != 0)
    short_c = (g.nk % g.bk != 0) if forward else (g.nq % g.bq != 0)
    Rr, Cr = R - short_r, C - short_c  # regular rows / columns
    D = np.flatnonzero(st == state).astype(np.int64) - (g.nkb - 1)  # diagonals qb - kb, ascending
    rows = np.arange(Rr, dtype=np.int64)
    if forward:  # kb = qb - delta, kb in [0, Cr): delta in [qb - Cr + 1, qb], taken descending
        lo, hi = np.searchsorted(D, rows - Cr + 1), np.searchsorted(D, rows, side="right")
        first, sign = hi - 1, -1
    else:  # qb = kb + delta, qb in [0, Cr): delta in [-kb, Cr - 1 - kb], ascending
        lo, hi = np.searchsorted(D, -rows), np.searchsorted(D, Cr - 1 - rows, side="right")
        first, sign = lo, 1
    count = hi - lo
    extra = (edge_main[:Rr] == state) if short_c else np.zeros(Rr, dtype=bool)
    cross = np.flatnonzero(edge_cross == state) if short_r else np.zeros(0, dtype=np.int64)
    width = int(max(int((count + extra).max()) if Rr else 0, cross.size))
    num, idx = _rows(D, first, count, rows, sign, extra, C - 1, width)
    if short_r:
        num = np.append(num, cross.size)
        last = np.zeros((1, width), dtype=np.int32)
        last[0, :cross.size] = cross
        idx = np.concatenate([idx, last])
    return num.astype(np.int32), idx


def tables(node: ir.Node, g: Geometry, st: np.ndarray) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]],
                                                                dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Forward and backward ``{state: (num, idx)}`` for PARTIAL and FULL from diagonal states."""
    R, C = g.nqb, g.nkb
    last_col = d_states(node, g, np.arange(R, dtype=np.int64), np.full(R, C - 1, dtype=np.int64))
    last_row = d_states(node, g, np.full(C, R - 1, dtype=np.int64), np.arange(C, dtype=np.int64))
    fwd, bwd = {}, {}
    for state in (PARTIAL, FULL):
        fwd[state] = _direction(st, g, state, True, last_col, last_row)
        bwd[state] = _direction(st, g, state, False, last_row, last_col)
    return fwd, bwd


def block_tables(parts: list[dict[int, tuple[np.ndarray, np.ndarray]]]) -> BlockTables:
    """Stack per-group ``{state: (num, idx)}`` into BlockTables (padded to the widest group)."""
    import torch

    out = []
    for state in (PARTIAL, FULL):
        width = max(p[state][1].shape[1] for p in parts)
        idx = np.zeros((len(parts), parts[0][state][1].shape[0], width), dtype=np.int32)
        for k, p in enumerate(parts):
            idx[k, :, :p[state][1].shape[1]] = p[state][1]
        out += [torch.from_numpy(np.stack([p[state][0] for p in parts])), torch.from_numpy(idx)]
    return BlockTables(out[0], out[1], out[2], out[3])


__all__ = ["EMPTY", "block_tables", "diagonals", "tables"]
