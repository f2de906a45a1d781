"""Plan-driven tile choice: which block sizes a pattern runs fastest at, from its plan's counts.

A block-sparse kernel's time is close to a sum over the tiles it visits, each costing what its
shape (``block_q x block_k``, head dim) and kind (FULL: no predicate; PARTIAL: predicate and
masking) cost, plus a set-up / epilogue cost per non-empty query row (forward, dQ) and key
column (dK/dV). The plan gives the exact tile counts at any block size in milliseconds, so the
default config is the cheapest of a short candidate list under that model (:func:`forward_choice`,
:func:`backward_choice`); the per-tile costs are fitted to H100 measurements
(``benchmarks/dev/tiles_sweep.py``, ``benchmarks/dev/tiles_fit.py``). A candidate replaces the
rule-based config only when it is predicted clearly faster (``MARGIN``), so where the model is
unsure, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from patternc import ir


@dataclass(frozen=True)
class Counts:
    """What a plan at one block size makes a kernel do, per batch element, summed over heads."""

    full: int  # FULL tiles visited
    partial: int  # PARTIAL tiles visited
    rows: int  # query-block rows with at least one tile
    cols: int  # key-block columns with at least one tile
    heaviest: int  # tiles of the longest query-block row


def counts(node: ir.Node, nq: int, nk: int, block_q: int, block_k: int, heads: int) -> Counts:
    """The plan's counts for concrete ``node`` at these lengths, blocks and ``heads`` query heads
    (``patternc.lower.lower``, cached there)."""
    from patternc.lower import lower

    plan = lower(node, nq, nk, block_q=block_q, block_k=block_k, heads=heads)
    per = heads // plan.groups  # heads per head group
    fwd, bwd = plan.forward, plan.backward
    row = fwd.num.long() + fwd.full_num.long()
    col = bwd.num.long() + bwd.full_num.long()
    return Counts(int(fwd.full_num.long().sum()) * per, int(fwd.num.long().sum()) * per,
                  int((row > 0).sum()) * per, int((col > 0).sum()) * per,
                  int(row.max()) if row.numel() else 0)
