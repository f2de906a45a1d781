"""Lowering: a pattern at given lengths -> a block-sparse :class:`~patternc.plan.Plan`, analytically.

    >>> from patternc.ir import Band, Causal
    >>> plan = lower(Band(1) & Causal(), 8, 8, block_q=4, block_k=4)
    >>> plan.forward.full_num.tolist(), plan.forward.num.tolist()
    ([[0, 0]], [[1, 2]])

Stages: :mod:`~patternc.lower.blocks` classifies primitives, :mod:`~patternc.lower.combine`
combines them exactly over run-length block rows (:mod:`~patternc.lower.rle`),
:mod:`~patternc.lower.tables` writes the BCSR tables, :mod:`~patternc.lower.strategies`
describes how the parts execute. See docs/lowering.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from patternc import ir
from patternc.lower import toeplitz
from patternc.lower.blocks import Geometry, count_states, residue_count
from patternc.lower.combine import classify_exact
from patternc.lower.rle import EMPTY, BlockRLE, transpose, uniform
from patternc.lower.strategies import Branch, Strategies
from patternc.lower.symmetry import symmetric
from patternc.lower.tables import stats, tables
from patternc.passes import optimize
from patternc.plan import Plan

__all__ = ["Branch", "Geometry", "group_states", "lower"]


def _check_sizes(nq: int, nk: int, block_q: int, block_k: int) -> None:
    for name, v, lo in (("nq", nq, 0), ("nk", nk, 0), ("block_q", block_q, 1), ("block_k", block_k, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ir.PatternError(f"{name} must be an integer >= {lo}, got {v!r}")


def group_states(node: ir.Node, g: Geometry) -> list[tuple[ir.Node, BlockRLE]]:
    """Per head group: the concrete head-free pattern and its exact block states."""
    node = ir.concretize(node, g.nk)
    ir.check_arguments(node)
    G = ir.head_counts(node)
    # passes run on the concrete, checked, head-free tree: nothing they drop can fail
    subs = [optimize(ir.select_head(node, k, G)) for k in range(G)]

    def states(sub: ir.Node) -> BlockRLE:
        return uniform(g.nqb, g.nkb, EMPTY) if g.nqb == 0 or g.nkb == 0 else classify_exact(sub, g)

    return list(zip(subs, map_distinct(states, subs)))


T = TypeVar("T")
U = TypeVar("U")


def map_distinct(fn: Callable[[T], U], items: list[T]) -> list[U]:
    """``[fn(x) for x in items]``, once per distinct item. Serial: on the 2-core VM, threads
    (numpy releases the GIL only in some loops) made ``longformer_heads`` at 1M tokens slower
    (best of 15: 33 vs 24 ms) and ``sparse_transformer_fixed_heads`` no faster."""
    done = {x: fn(x) for x in dict.fromkeys(items)}
    return [done[x] for x in items]


@functools.lru_cache(maxsize=128)
def lower(node: ir.Node, nq: int, nk: int, *, block_q: int = 128, block_k: int = 128,
          heads: int | None = None) -> Plan:
    """The block-sparse plan of ``node`` for ``nq`` queries and ``nk`` keys (cached).

    Raises :class:`ir.PatternError` for arguments out of range at ``n = nk`` and for a
    ``heads`` count that is not a multiple of every ``heads(...)`` size.
    """
    _check_sizes(nq, nk, block_q, block_k)
    if heads is not None:
        ir.check_heads(node, heads)
    g = Geometry(nq, nk, block_q, block_k)
    fast = _diagonal_plan(node, g)
    if fast is not None:
        return fast
    perm = key_period(node, g)
    # periodic key columns (fixed): classify with key blocks in residue order, where a row is a
    # few runs instead of one per period; branches then classify on their own, in natural order
    gp = (Geometry(nq, nk, block_q, block_k, perm=perm, segments=key_segments(node, g, perm))
          if perm > 1 else g)
    per_group = group_states(node, gp)
    groups: list[tuple[ir.Node, BlockRLE | None]] = [(sub, None if perm > 1 else rle)
                                                     for sub, rle in per_group]
    rles = [rle for _, rle in per_group]
    fwd = tables(rles, gp)
    if nq == nk and block_q == block_k and perm == 1 and all(symmetric(sub) for sub, _ in per_group):
        bwd = dataclasses.replace(fwd)  # the transpose is the states themselves (symmetry.py)
    else:
        bwd = tables(map_distinct(transpose, rles), gp, transposed=True)
    return Plan(nq, nk, block_q, block_k, len(per_group), fwd, bwd, strategies=Strategies(groups, g),
                stats=stats(fwd, bwd, g.nqb, g.nkb))


PERMUTE_CELLS = 1 << 16
"""Grids above this many blocks classify periodic key patterns in residue order."""
DIAGONAL_CELLS = 1 << 16
"""Grids above this many blocks build the tables of periodic patterns of ``d`` per diagonal."""


def key_period(node: ir.Node, g: Geometry) -> int:
    """The period in key blocks of the pattern's periodic key columns (``fixed(l, c)``: the
    summary keys repeat every ``l`` tokens), when the grid is large and holds many periods; else 1."""
    if g.nqb * g.nkb <= PERMUTE_CELLS:
        return 1
    conc = ir.concretize(node, g.nk)
    ls = [int(n.l) for n in conc.walk() if isinstance(n, ir.Fixed)]
    if not ls:
        return 1
    period = math.lcm(*(math.lcm(l, g.bk) // g.bk for l in ls))
    return period if 2 <= period <= g.nkb // 4 else 1


def key_segments(node: ir.Node, g: Geometry, period: int) -> tuple[int, ...]:
    """Residue classes mod ``period`` grouped into segments of equal summary-column states (per
    ``fixed`` of the pattern, whether a block of the class holds none, some or only summary keys):
    ``fixed(1024, 8)`` at block 128 is classes 0..6 (no summary key) and 7. A natural run then
    splits into one piece per segment instead of one per class."""
    conc = ir.concretize(node, g.nk)
    kb = np.arange(period, dtype=np.int64)
    j0, j1 = g.k_span(kb)
    lc = [(int(n.l), int(n.c)) for n in conc.walk() if isinstance(n, ir.Fixed)]
    sig = np.stack([count_states(residue_count(j1 + 1, l, c) - residue_count(j0, l, c), j1 - j0 + 1)
                    for l, c in lc], axis=1)
    change = np.flatnonzero((sig[1:] != sig[:-1]).any(axis=1)) + 1
    return (0, *change.tolist(), period)


def _alternates(node: ir.Node, g: Geometry) -> bool:
    """Some stride or dilation longer than a tile's span: block states alternate along rows."""
    span = g.bq + g.bk - 1
    return any((isinstance(n, ir.Strided) and int(n.s) > span)
               or (isinstance(n, ir.Dilated) and int(n.r) > span) for n in node.walk())


def _diagonal_plan(node: ir.Node, g: Geometry) -> Plan | None:
    """Large grids of periodic patterns of ``d`` alone: tables from per-diagonal states
    (:mod:`patternc.lower.toeplitz`) instead of run lists."""
    if g.nqb * g.nkb <= DIAGONAL_CELLS:
        return None
    conc = ir.concretize(node, g.nk)
    ir.check_arguments(conc)
    if toeplitz.MIN_DIAGONAL_RUNS and not _alternates(conc, g):
        return None  # without a period longer than a tile the diagonals change a few times only
    G = ir.head_counts(conc)
    subs = [optimize(ir.select_head(conc, k, G)) for k in range(G)]
    # worth it when some head group is periodic; then every group must have a diagonal form
    diags = {s: toeplitz.diagonals(s, g, min_runs=0) for s in set(subs)}
    if any(d is None for d in diags.values()) or not any(toeplitz.alternating(d) for d in diags.values()):
        return None
    parts = {s: toeplitz.tables(s, g, d) for s, d in diags.items() if d is not None}
    fwd = toeplitz.block_tables(g.nqb, [parts[s][0] for s in subs])
    bwd = toeplitz.block_tables(g.nkb, [parts[s][1] for s in subs])
    return Plan(g.nq, g.nk, g.bq, g.bk, G, fwd, bwd, strategies=Strategies([(s, None) for s in subs], g),
                stats=stats(fwd, bwd, g.nqb, g.nkb))
