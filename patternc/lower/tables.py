"""Exact run-length block states -> block tables as runs (see :class:`~patternc.plan.Runs`) and
statistics. Nothing here is proportional to the number of blocks: a run of FULL blocks is one
run of the tables, whatever its length."""

from __future__ import annotations

import numpy as np
import torch

from patternc.lower.blocks import Geometry
from patternc.lower.rle import EMPTY, FULL, PARTIAL, BlockRLE
from patternc.plan import BlockTables, Runs

RunArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(g, row, pos, start, count, step)`` int64 arrays of one state."""


def positions(row: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Where each run starts in its row's list: runs sorted by row, counts before it in its row."""
    before = np.cumsum(count) - count
    if row.size == 0:
        return before
    new = np.ones(row.size, dtype=bool)
    new[1:] = row[1:] != row[:-1]
    heads = np.flatnonzero(new)  # each row's first run
    return before - np.repeat(before[heads], np.diff(heads, append=row.size))


def state_runs(rle: BlockRLE, state: int, g: int = 0) -> RunArrays:
    """The runs of ``rle`` in ``state`` as table runs of head group ``g`` (step 1)."""
    sel = np.flatnonzero(rle.state == state)
    row, start = rle.row[sel], rle.start[sel]
    count = rle.stop[sel] - start
    return np.full(row.size, g, dtype=np.int64), row, positions(row, count), start, count, np.ones_like(row)


def _spread(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``n[k]`` items per piece ``k``: each item's piece and its index in the piece."""
    i = np.repeat(np.arange(n.size, dtype=np.int64), n)
    return i, np.arange(i.size, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)


def natural_columns(runs: RunArrays, g: Geometry) -> RunArrays:
    """Runs over ``g``'s residue-ordered key blocks -> runs over natural key blocks (the rows'
    entries then need sorting). A run splits at group boundaries; a piece within a group of
    ``s`` residue classes becomes one run of step ``g.perm`` per class, or one run of step 1
    per period it spans (a few blocks of one period), whichever is fewer."""
    grp, row, pos, start, count, _ = runs
    off, seg, M = g.residue_offsets(), g.seg(), g.perm
    stop = start + count
    q0 = np.searchsorted(off, start, side="right") - 1
    i, t = _spread(np.searchsorted(off, stop - 1, side="right") - q0)
    q = q0[i] + t
    a, b = np.maximum(start[i], off[q]), np.minimum(stop[i], off[q + 1])
    if (seg[1:] - seg[:-1] == 1).all():  # one class per group: one run of step M each
        return grp[i], row[i], pos[i] + a - start[i], seg[q] + M * (a - off[q]), b - a, np.full(i.size, M)
    # a piece: ranks [i0, i1) of group q, rank r is block M * (r // s) + seg[q] + r % s
    piece = (grp[i], row[i], pos[i] + a - start[i], (seg[1:] - seg[:-1])[q], seg[q], a - off[q], b - off[q])
    s, i0, i1 = piece[3], piece[5], piece[6]
    by_class = np.minimum(s, i1 - i0) <= (i1 - 1) // s - i0 // s + 1
    parts = [f(tuple(x[k] for x in piece), M) for f, k in
             ((_by_class, np.flatnonzero(by_class)), (_by_period, np.flatnonzero(~by_class))) if k.size]
    if not parts:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, z, z, z
    return parts[0] if len(parts) == 1 else tuple(np.concatenate(c) for c in zip(*parts))  # type: ignore[return-value]


Piece = tuple[np.ndarray, ...]
"""``(group, row, pos, s, first class, rank lo, rank hi)`` of pieces of group-ordered runs."""


def _by_class(piece: Piece, M: int) -> RunArrays:
    """One run of step ``M`` per class: ranks ``lo + u, lo + u + s, ...`` below ``hi``."""
    grp, row, pos, s, first, lo, hi = piece
    n = np.minimum(s, hi - lo)
    j, u = _spread(n)
    f, sj = lo[j] + u, s[j]
    cnt = (hi[j] - f + sj - 1) // sj
    before = np.cumsum(cnt) - cnt
    p = pos[j] + before - before[(np.cumsum(n) - n)[j]]
    return grp[j], row[j], p, M * (f // sj) + first[j] + f % sj, cnt, np.full(j.size, M, dtype=np.int64)


def _by_period(piece: Piece, M: int) -> RunArrays:
    """One run of step 1 per period ``P``: ranks ``[max(lo, P s), min(hi, P s + s))``."""
    grp, row, pos, s, first, lo, hi = piece
    k, v = _spread((hi - 1) // s - lo // s + 1)
    sk, P = s[k], lo[k] // s[k] + v
    a, b = np.maximum(lo[k], P * sk), np.minimum(hi[k], P * sk + sk)
    step = np.ones(k.size, dtype=np.int64)
    return grp[k], row[k], pos[k] + a - lo[k], M * P + first[k] + a - P * sk, b - a, step


def as_tables(R: int, parts: list[dict[int, RunArrays]], sort_rows: bool = False) -> BlockTables:
    """BlockTables from per-group ``{PARTIAL: runs, FULL: runs}`` (rows sorted within a group)."""
    num, runs = _state_tables(R, parts, PARTIAL, sort_rows)
    full_num, full_runs = _state_tables(R, parts, FULL, sort_rows)
    return BlockTables(num, runs, full_num, full_runs)


def _state_tables(R: int, parts: list[dict[int, RunArrays]], state: int,
                  sort_rows: bool) -> tuple[torch.Tensor, Runs]:
    """Counts ``[G, R]`` and runs of one state over all groups."""
    cols = (list(parts[0][state]) if len(parts) == 1 else
            [np.concatenate([p[state][k] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
             for k in range(6)])
    g, row, _, _, count, _ = cols
    lin = row if len(parts) == 1 else g * R + row
    num = np.bincount(lin, weights=count, minlength=len(parts) * R) if parts else np.zeros(0)
    # total and width from the counts, in numpy: torch's reductions over ~10^5 entries go
    # through its OpenMP pool, whose barrier stalls for milliseconds when another process holds
    # the other core (the VM is shared)
    total, width = (int(num.sum()), int(num.max())) if num.size else (0, 0)
    tg, trow, tpos, tstart, tcount, tstep = (torch.from_numpy(c.astype(np.int64, copy=False)) for c in cols)
    runs = Runs(tg, trow, tpos, tstart, tcount, tstep, total, width, sort_rows)
    return torch.from_numpy(num.astype(np.int32).reshape(len(parts), R)), runs


def tables(rles: list[BlockRLE], g: Geometry | None = None, transposed: bool = False) -> BlockTables:
    """One BlockTables from per-head-group exact states (all the same shape). With a geometry
    ``g`` whose ``perm > 1`` the states' key blocks are in residue order: the columns
    (forward) or the rows (``transposed``) are mapped back to natural key blocks."""
    perm = g is not None and g.perm > 1
    parts = []
    for k, rle in enumerate(rles):
        part = {s: state_runs(rle, s, k) for s in (PARTIAL, FULL)}
        if g is not None and perm:
            for s, runs in part.items():
                part[s] = ((runs[0], g.from_perm(runs[1]), *runs[2:]) if transposed
                           else natural_columns(runs, g))
        parts.append(part)
    return as_tables(rles[0].R if rles else 0, parts, sort_rows=perm and not transposed)


def stats(fwd: BlockTables, bwd: BlockTables, nqb: int, nkb: int) -> dict[str, float | int]:
    """Block density, FULL / PARTIAL counts (summed over head groups), heaviest row and column."""
    # in numpy on the host tensors' memory: a few small torch reductions cost more than the rest
    fn, ffn, bn, bfn = (t.numpy().astype(np.int64) for t in (fwd.num, fwd.full_num, bwd.num, bwd.full_num))
    G = int(fn.shape[0])
    partial, full = int(fn.sum()), int(ffn.sum())
    cells = G * nqb * nkb
    row = fn + ffn
    col = bn + bfn
    return {
        "block_density": (partial + full) / cells if cells else 0.0,
        "full_blocks": full,
        "partial_blocks": partial,
        "nonempty_blocks": partial + full,
        "heaviest_row": int(row.max()) if row.size else 0,
        "heaviest_col": int(col.max()) if col.size else 0,
        "mean_row": float(row.mean()) if row.size else 0.0,
        "empty_rows": int((row == 0).sum()),
    }


__all__ = ["EMPTY", "as_tables", "positions", "state_runs", "stats", "tables"]
