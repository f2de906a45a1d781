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
from patternc.analysis.atoms import DMod, Iv, compile_pattern, concrete, evaluate


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
    pattern, exactly, or None when it is not translation-invariant.

    Tiles of full size on one diagonal ``t = qb - kb`` share their offset interval, so they are
    decided once per diagonal; the last query block row and key block column (possibly short)
    are decided tile by tile: ``O(nqb + nkb)`` in all."""
    if nq == 0 or nk == 0:
        return 0.0, 0
    off = nk - nq
    dlo, dhi = off - (nk - 1), off + nq - 1  # every offset a pair can have
    offsets = offset_set(node, dlo, dhi)
    if offsets is None:
        return None
    prefix = np.concatenate([[0], np.cumsum(offsets, dtype=np.int64)])

    def meets(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        lo, hi = np.clip(lo, dlo, dhi + 1) - dlo, np.clip(hi, dlo - 1, dhi) - dlo
        return (hi >= lo) & (prefix[np.maximum(hi, lo - 1) + 1] - prefix[lo] > 0)

    nqb, nkb = -(-nq // block), -(-nk // block)
    q_lo = off + np.arange(nqb, dtype=np.int64) * block
    q_hi = off + np.minimum(np.arange(1, nqb + 1, dtype=np.int64) * block, nq) - 1
    k_lo = np.arange(nkb, dtype=np.int64) * block
    k_hi = np.minimum(k_lo + block, nk) - 1
    # full-size tiles: qb < nqb - 1 and kb < nkb - 1, diagonal t = qb - kb in [-(nkb - 2), nqb - 2]
    t = np.arange(-(nkb - 2), nqb - 1, dtype=np.int64)
    diag = meets(off + t * block - (block - 1), off + t * block + (block - 1)).astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(diag)])
    qb = np.arange(nqb - 1, dtype=np.int64)  # rows of full-size query blocks
    # row qb, key blocks 0..nkb-2: diagonals qb - (nkb - 2) .. qb, i.e. indices qb .. qb + nkb - 2
    per_row = np.zeros(nqb, dtype=np.int64)
    if nkb > 1:
        per_row[:-1] = cum[qb + nkb - 1] - cum[qb]
    # last key block column for every row, and the last query block row for every key block
    per_row += meets(q_lo - k_hi[-1], q_hi - k_lo[-1])
    per_row[-1] += int(meets(q_lo[-1] - k_hi[:-1], q_hi[-1] - k_lo[:-1]).sum())
    return int(per_row.sum()) / (nqb * nkb), int(per_row.max())
