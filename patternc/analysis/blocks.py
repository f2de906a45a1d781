"""Block density of translation-invariant patterns from their offset set, in ``O(tiles)``.

A pattern built only from ``band``, ``window``, ``causal``, ``strided``, ``dilated``, ``full``
and ``empty`` holds ``(p, j)`` iff its offset ``d = p - j`` lies in a set ``D``. The pairs of a
tile (query block x key block) realize every offset of one interval ``[p_min - j_max,
p_max - j_min]``, so the tile is non-empty iff that interval meets ``D``: one prefix-sum lookup
per tile. This is exact and needs no per-pair work; other patterns go to the lowering.
"""

from __future__ import annotations

import numpy as np

from patternc import ir
from patternc.analysis.rows import DMod, Iv, compile_pattern, concrete, evaluate

TILES_PER_CHUNK = 1 << 20


def offset_set(node: ir.Node, dlo: int, dhi: int) -> np.ndarray | None:
    """``D[d - dlo]`` for offsets ``d`` in ``[dlo, dhi]`` of a concrete, head-free,
    translation-invariant pattern; None when the pattern is not translation-invariant."""
    formula, atoms = compile_pattern(node)
    d = np.arange(dlo, dhi + 1, dtype=np.int64)
    env: list[np.ndarray | bool] = []
    for at in atoms:
        if isinstance(at, DMod):
            env.append(d % at.m == 0)
        elif isinstance(at, Iv) and isinstance(at.node, ir.Band):
            env.append(np.abs(d) <= concrete(at.node.w))
        elif isinstance(at, Iv) and isinstance(at.node, ir.Window):
            env.append((d >= -concrete(at.node.right)) & (d <= concrete(at.node.left)))
        elif isinstance(at, Iv) and isinstance(at.node, ir.Causal):
            env.append(d >= 0)
        else:
            return None
    return np.broadcast_to(np.asarray(evaluate(formula, env), dtype=bool), d.shape).copy()


def offset_block_stats(node: ir.Node, nq: int, nk: int, block: int) -> tuple[float, int] | None:
    """(block density, most non-empty key blocks of a query block) of a concrete head-free
    pattern, exactly, or None when it is not translation-invariant."""
    off = nk - nq
    dlo, dhi = off - (nk - 1), off + nq - 1  # every offset a pair can have
    if nq == 0 or nk == 0:
        return 0.0, 0
    offsets = offset_set(node, dlo, dhi)
    if offsets is None:
        return None
    prefix = np.concatenate([[0], np.cumsum(offsets, dtype=np.int64)])
    nqb, nkb = -(-nq // block), -(-nk // block)
    kb = np.arange(nkb, dtype=np.int64)
    j_lo, j_hi = kb * block, np.minimum(kb * block + block, nk) - 1
    visited, heaviest = 0, 0
    step = max(1, TILES_PER_CHUNK // nkb)
    for q0 in range(0, nqb, step):
        qb = np.arange(q0, min(nqb, q0 + step), dtype=np.int64)[:, None]
        p_lo, p_hi = off + qb * block, off + np.minimum(qb * block + block, nq) - 1
        lo, hi = p_lo - j_hi[None, :] - dlo, p_hi - j_lo[None, :] - dlo  # indices into offsets
        per_row = ((prefix[hi + 1] - prefix[lo]) > 0).sum(axis=1)
        visited += int(per_row.sum())
        heaviest = max(heaviest, int(per_row.max()))
    return visited / (nqb * nkb), heaviest
