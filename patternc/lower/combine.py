"""Exact block classification of whole pattern trees.

:func:`classify` walks a concrete, head-free pattern:

* subtrees that depend on the query position only (``rows``, and operators over them) or on the
  key only (``cols``) are evaluated as one boolean per query / key and counted per block, exactly,
  in O(n);
* other primitives come from :mod:`patternc.lower.blocks`;
* operators combine children run by run with possibility-set tables: ``E | x = x``,
  ``F | x = F``, and ``P | P`` is "PARTIAL or FULL" (``causal | ~causal`` is FULL on the diagonal).
  A query-only and a key-only operand combine exactly (``P | P = P``: a row outside one and a
  column outside the other make a pair outside both);
* undecided blocks are resolved exactly, only where they are: a subtree of ``d = p - j`` alone
  by a 1-D prefix sum over ``d`` (O(1) per block), ``fixed`` by arithmetic, anything else by
  evaluating the predicate on those blocks' tiles (one ``block_q x block_k`` tile each).
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np

from patternc import ir
from patternc.lower import blocks as B
from patternc.lower.intervals import evaluate, interval_count
from patternc.lower.predicate import NumpyEnv, predicate
from patternc.lower.rle import (
    EMPTY,
    FULL,
    PARTIAL,
    BlockRLE,
    from_dense,
    is_exact,
    map_states,
    merge,
    split_runs,
)

_SINGLE = (EMPTY, PARTIAL, FULL)


def _lift(op: dict[tuple[int, int], int]) -> np.ndarray:
    """An 8 x 8 table on possibility sets from a table on single states."""
    t = np.zeros((8, 8), dtype=np.uint8)
    for a in range(8):
        for b in range(8):
            t[a, b] = reduce(lambda x, y: x | y,
                             [op[(x, y)] for x in _SINGLE if a & x for y in _SINGLE if b & y], 0)
    return t


def _table(pp: int, kind: str) -> np.ndarray:
    E, P, F = EMPTY, PARTIAL, FULL
    if kind == "or":
        op = {(E, x): x for x in _SINGLE} | {(F, x): F for x in _SINGLE} | {(P, E): P, (P, F): F, (P, P): pp}
    else:
        op = {(E, x): E for x in _SINGLE} | {(F, x): x for x in _SINGLE} | {(P, E): E, (P, F): P, (P, P): pp}
    return _lift(op)


OR = _table(PARTIAL | FULL, "or")
AND = _table(EMPTY | PARTIAL, "and")
# a query-only operand with a key-only one: the cross product decides P op P exactly
OR_PRODUCT = _table(PARTIAL, "or")
AND_PRODUCT = _table(PARTIAL, "and")
NOT = np.array([sum(s for s, t in ((EMPTY, FULL), (PARTIAL, PARTIAL), (FULL, EMPTY)) if x & t)
                for x in range(8)], dtype=np.uint8)
DIFF = AND[:, NOT]
DIFF_PRODUCT = AND_PRODUCT[:, NOT]

_D_PRIMS = (ir.Causal, ir.Window, ir.Band, ir.Dilated, ir.Strided)


def dependence(node: ir.Node) -> frozenset[str]:
    """What the predicate reads: ``p`` (query position), ``j`` (key), ``d`` (``p - j``); a
    primitive that needs both ``p`` and ``j`` reads ``{"p", "j"}``."""
    match node:
        case ir.Full() | ir.Empty():
            return frozenset()
        case ir.Rows():
            return frozenset("p")
        case ir.Cols():
            return frozenset("j")
        case _ if isinstance(node, _D_PRIMS):
            return frozenset("d")
    if node.children():
        return frozenset().union(*(dependence(c) for c in node.children()))
    return frozenset("pj")


def _one_dim(node: ir.Node, g: B.Geometry) -> BlockRLE | None:
    dep = dependence(node)
    if dep <= {"p"}:
        rows = evaluate(node, min(g.off, 0), g.nk, g.nk)
        return B.rows_from_cover(g, rows.cover)
    if dep <= {"j"}:
        return B.cols_from_cover(g, evaluate(node, 0, g.nk, g.nk).cover)
    return None


def _group(kind: type, parts: list[ir.Node]) -> ir.Node:
    return parts[0] if len(parts) == 1 else kind(tuple(parts))


def _nary(node: ir.Union | ir.Intersect, g: B.Geometry, inside_d: bool) -> BlockRLE:
    table, product = (OR, OR_PRODUCT) if isinstance(node, ir.Union) else (AND, AND_PRODUCT)
    ps = [c for c in node.parts if dependence(c) <= {"p"}]
    js = [c for c in node.parts if c not in ps and dependence(c) <= {"j"}]
    rest = [c for c in node.parts if c not in ps and c not in js]
    acc: BlockRLE | None = None
    if ps and js:
        pa = classify(_group(type(node), ps), g, inside_d)
        acc = merge(pa, classify(_group(type(node), js), g, inside_d), product)
    else:
        rest = ps + js + rest
    for c in rest:
        r = classify(c, g, inside_d)
        acc = r if acc is None else merge(acc, r, table)
    assert acc is not None
    return acc


def _combine(node: ir.Node, g: B.Geometry, inside_d: bool) -> BlockRLE:
    match node:
        case ir.Union() | ir.Intersect():
            return _nary(node, g, inside_d)
        case ir.Diff(a, b):
            da, db = dependence(a), dependence(b)
            product = (da <= {"p"} and db <= {"j"}) or (da <= {"j"} and db <= {"p"})
            table = DIFF_PRODUCT if product else DIFF
            return merge(classify(a, g, inside_d), classify(b, g, inside_d), table)
        case ir.Complement(a):
            return map_states(classify(a, g, inside_d), NOT)
        case ir.Global(t):
            return merge(classify(ir.Rows(t), g), classify(ir.Cols(t), g), OR_PRODUCT)
        case ir.Prefix(m):
            # p < m (positions are negative when nq > nk), j < m
            rows, cols = ir.TokenList.range(min(0, g.off), m), ir.TokenList.range(0, m)
            return merge(classify(ir.Rows(rows), g), classify(ir.Cols(cols), g), AND_PRODUCT)
        case ir.Fixed(l, c):
            rle = merge(B.permute(B.blocks(g, int(l)), g), B.fixed_columns(g, int(l), int(c)), OR)
            return _resolve(rle, g, lambda qb, kb: B.fixed_resolve(g, int(l), int(c), qb, kb))
        case ir.Heads():
            raise ir.PatternError("a heads(...) pattern needs the number of heads")
    return B.primitive(node, g)


def classify(node: ir.Node, g: B.Geometry, inside_d: bool = False) -> BlockRLE:
    """Block states of a concrete, head-free pattern; undecided states may remain (see
    :func:`classify_exact`) except in subtrees of ``d`` alone, which are resolved once, at the
    top of each such subtree (``inside_d``: the parent reads ``d`` alone, let it resolve).
    Memoized in ``g.memo``."""
    key = (node, inside_d)
    if key not in g.memo:
        g.memo[key] = _classify(node, g, inside_d)
    return g.memo[key]


def _classify(node: ir.Node, g: B.Geometry, inside_d: bool) -> BlockRLE:
    one = _one_dim(node, g)
    if one is not None:
        return one
    d_only = dependence(node) <= {"d"}
    if d_only and not inside_d and g.nqb * g.nkb <= DENSE_D_CELLS and _periodic(node, g):
        return dense_d(node, g)
    rle = _combine(node, g, d_only)
    if d_only and not inside_d:
        rle = _resolve(rle, g, lambda qb, kb: d_states(node, g, qb, kb))
    return rle


DENSE_D_CELLS = 1 << 22
"""A pattern of ``d`` alone with a stride touches about every block; below this many blocks it is
cheaper to decide each block by prefix sums than to build runs primitive by primitive."""


def _periodic(node: ir.Node, g: B.Geometry) -> bool:
    """A stride longer than a tile's span: runs alternate along every row."""
    return any(isinstance(s, ir.Strided) and int(s.s) > g.bq + g.bk - 1 for s in node.walk())


def dense_d(node: ir.Node, g: B.Geometry) -> BlockRLE:
    """Every block of a pattern of ``d`` alone, decided by prefix sums over ``d`` (O(1) each)."""
    _, p0, p1 = g.all_rows()
    kb = np.arange(g.nkb, dtype=np.int64)
    j0, j1 = g.k_span(kb)
    dmin = (p0[:, None] - j1[None, :]).reshape(-1)
    dmax = (p1[:, None] - j0[None, :]).reshape(-1)
    st = _d_count_states(node, g, dmin, dmax)
    return from_dense(np.ascontiguousarray(st.reshape(g.nqb, g.nkb)[:, g.from_perm(kb)]))


def classify_exact(node: ir.Node, g: B.Geometry, tile_budget: int = 1 << 21) -> BlockRLE:
    """Block states with every undecided block resolved on its tile (memoized in ``g.memo``)."""
    key = ("exact", node)
    if key not in g.memo:
        same = absorb(node)
        if same is not node:
            g.memo[key] = classify_exact(same, g, tile_budget)
            return g.memo[key]
        rle = classify(node, g)
        g.memo[key] = _resolve(rle, g, lambda qb, kb: restricted_states(node, g, qb, kb, tile_budget))
    return g.memo[key]


def _d_range(node: ir.Node) -> tuple[float, float] | None:
    """The interval of ``d`` that ``causal`` or a concrete ``window`` holds."""
    match node:
        case ir.Causal():
            return 0, math.inf
        case ir.Window(left, right) if isinstance(left, int) and isinstance(right, int):
            return -right, left
    return None


def _inside(r: tuple[float, float] | None, outer: tuple[float, float]) -> bool:
    return r is not None and outer[0] <= r[0] and r[1] <= outer[1]


def absorb(node: ir.Node) -> ir.Node:
    """``(a | b) & w`` as ``a | (b & w)`` when ``a`` lies inside ``w`` (windows and ``causal``,
    compared as intervals of ``d``), else ``node`` itself. The same pairs, so the same exact
    states; but ``(cols | window(1019, 0)) & causal`` no longer leaves every diagonal block
    undecided (``P & P``) for :func:`restricted_states`: ``window & causal`` is the window."""
    if not (isinstance(node, ir.Intersect) and len(node.parts) == 2):
        return node
    for u, w in (node.parts, node.parts[::-1]):
        outer = _d_range(w)
        if not isinstance(u, ir.Union) or outer is None:
            continue
        inner = [p for p in u.parts if _inside(_d_range(p), outer)]
        if not inner:
            continue
        rest = [p for p in u.parts if p not in inner]
        if not rest:
            return u
        return ir.Union((*inner, ir.Intersect((_group(ir.Union, rest), w))))
    return node


def states_at(rle: BlockRLE, g: B.Geometry, qb: np.ndarray, kb: np.ndarray) -> np.ndarray:
    """The states of ``rle`` (key blocks in ``g``'s column order) at blocks ``(qb, kb)``."""
    i = np.searchsorted(rle.keys(), qb * rle.C + g.to_perm(kb), side="right") - 1
    return rle.state[i]


_OPERATORS = (ir.Union, ir.Intersect, ir.Diff, ir.Complement)


def restricted(node: ir.Node, g: B.Geometry, qb: np.ndarray,
               kb: np.ndarray) -> tuple[list[ir.Node], np.ndarray]:
    """Per block, ``node`` with every operand that is EMPTY or FULL on the whole block replaced by
    ``empty`` / ``full`` and folded away: the distinct restricted patterns and which one each
    block has. ``(cols | window) & causal`` on a diagonal block away from the columns is
    ``window & causal`` there: a pattern of ``d`` alone, decided in O(1)."""
    n = qb.size
    if not isinstance(node, _OPERATORS) or dependence(node) <= {"d"} or n == 0:
        return [node], np.zeros(n, dtype=np.int64)
    kids = node.children()
    states = [states_at(classify_exact(c, g), g, qb, kb) for c in kids]
    subs = [restricted(c, g, qb, kb) for c in kids]
    # a block's signature: per operand EMPTY (1), FULL (4) or, PARTIAL, 8 + its own restriction,
    # packed into one integer (a 1-D unique is several times cheaper than a unique over rows)
    base = 8 + max(len(sub[0]) for sub in subs)
    sig = np.zeros(n, dtype=np.int64)
    for st, (_, which) in zip(states, subs):
        sig = sig * base + np.where(st == PARTIAL, 8 + which, st)
    uniq, inv = np.unique(sig, return_inverse=True)
    nodes = []
    for key in uniq.tolist():
        parts: list[ir.Node] = []
        for sub in reversed(subs):
            key, v = divmod(key, base)
            parts.append(ir.Full() if v == FULL else ir.Empty() if v == EMPTY else sub[0][v - 8])
        nodes.append(_fold(node, parts[::-1]))
    return nodes, inv.reshape(-1)


def _fold(node: ir.Node, parts: list[ir.Node]) -> ir.Node:
    """``node`` with children ``parts``, ``full`` / ``empty`` operands folded away: what the
    restriction needs of :func:`~patternc.passes.optimize` (whose pipeline costs ~50 us a call)
    on a concrete, checked tree, where dropping an operand can hide no error."""
    F, E = ir.Full(), ir.Empty()
    match node:
        case ir.Union() | ir.Intersect():
            absorbing, neutral = (F, E) if isinstance(node, ir.Union) else (E, F)
            if absorbing in parts:
                return absorbing
            rest = [p for p in parts if p != neutral]
            return neutral if not rest else rest[0] if len(rest) == 1 else type(node)(tuple(rest))
        case ir.Diff():
            a, b = parts
            return E if a == E or b == F else a if b == E else ir.Complement(b) if a == F else ir.Diff(a, b)
        case ir.Complement():
            (a,) = parts
            return E if a == F else F if a == E else ir.Complement(a)
    return _with_children(node, parts)


def _with_children(node: ir.Node, parts: list[ir.Node]) -> ir.Node:
    it = iter(parts)
    return ir.map_children(node, lambda _: next(it))


RESTRICT_MIN_BLOCKS = 256
"""Fewer undecided blocks than this are decided on their tiles directly: restricting the pattern
costs a few passes per distinct restriction, more than a few hundred border checks."""


def restricted_states(node: ir.Node, g: B.Geometry, qb: np.ndarray, kb: np.ndarray,
                      budget: int = 1 << 21) -> np.ndarray:
    """Exact states of blocks: each block's restricted pattern (:func:`restricted`), decided by
    prefix sums over ``d`` where it reads ``d`` alone, else on its tile."""
    if qb.size < RESTRICT_MIN_BLOCKS:
        return tile_states(node, g, qb, kb, budget)
    nodes, which = restricted(node, g, qb, kb)
    out = np.empty(qb.size, dtype=np.uint8)
    for k, sub in enumerate(nodes):
        sel = np.flatnonzero(which == k)
        if dependence(sub) <= {"d"}:
            out[sel] = d_states(sub, g, qb[sel], kb[sel])
        else:
            out[sel] = tile_states(sub, g, qb[sel], kb[sel], budget)
    return out


def _resolve(rle: BlockRLE, g: B.Geometry, states_of) -> BlockRLE:  # type: ignore[no-untyped-def]
    """Decide the blocks with several possible states by ``states_of(qb, kb)`` (natural key blocks)."""
    exact = is_exact(rle.state)
    if exact.all():
        return rle
    return split_runs(rle, ~exact, lambda qb, kb: states_of(qb, g.from_perm(kb)))


def d_states(node: ir.Node, g: B.Geometry, qb: np.ndarray, kb: np.ndarray) -> np.ndarray:
    """Exact states of blocks of a pattern of ``d`` alone: a tile holds every ``d`` from
    ``p0 - j1`` to ``p1 - j0``, so its state is the 1-D predicate's count over that range."""
    if qb.size == 0:
        return np.zeros(0, dtype=np.uint8)
    p0, p1 = g.q_span(qb)
    j0, j1 = g.k_span(kb)
    return _d_count_states(node, g, p0 - j1, p1 - j0)


def _d_count_states(node: ir.Node, g: B.Geometry, dmin: np.ndarray, dmax: np.ndarray) -> np.ndarray:
    lo, hi = int(dmin.min()), int(dmax.max())
    if interval_count(node, lo, hi + 1) * 16 < hi + 1 - lo:
        # few intervals of d (long strides, windows): count members by their boundaries
        iv = evaluate(node, lo, hi + 1, g.nk)
        return B.count_states(iv.cover(dmax + 1) - iv.cover(dmin), dmax - dmin + 1)
    d = np.arange(lo, hi + 1, dtype=np.int64)
    f = np.broadcast_to(predicate(node, d, np.zeros(1, dtype=np.int64), g.nk, NumpyEnv(g.nk)), d.shape)
    cs = np.concatenate([[0], np.cumsum(f, dtype=np.int64)])
    return B.count_states(cs[dmax - lo + 1] - cs[dmin - lo], dmax - dmin + 1)


def _border(g: B.Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of a tile's border cells: first and last row, first and last column. The border
    meets every diagonal, row and column of the tile, so it decides patterns of ``d``, ``p`` or
    ``j`` alone, and a mixed border proves any tile PARTIAL."""
    bq, bk = g.bq, g.bk
    ti = np.concatenate([np.zeros(bk), np.full(bk, bq - 1), np.arange(bq), np.arange(bq)]).astype(np.int64)
    tj = np.concatenate([np.arange(bk), np.arange(bk), np.zeros(bq), np.full(bq, bk - 1)]).astype(np.int64)
    return ti, tj


def _evaluate(node: ir.Node, g: B.Geometry, qb: np.ndarray, kb: np.ndarray, ti: np.ndarray, tj: np.ndarray,
              budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(any, all) of the predicate over cells ``(ti, tj)`` of each block (broadcastable offsets,
    clipped to the block: short edge tiles repeat their last row / column, which changes neither)."""
    anys, alls = np.empty(qb.size, dtype=bool), np.empty(qb.size, dtype=bool)
    env = NumpyEnv(g.nk, g.memo)
    cells = int(np.prod(np.broadcast_shapes(ti.shape, tj.shape)))
    step = max(1, budget // max(cells, 1))
    for lo in range(0, qb.size, step):
        q, k = qb[lo:lo + step], kb[lo:lo + step]
        p0, p1 = g.q_span(q)
        j0, j1 = g.k_span(k)
        shape = (q.size, *([1] * ti.ndim))
        p = np.minimum(p0.reshape(shape) + ti, p1.reshape(shape))
        j = np.minimum(j0.reshape(shape) + tj, j1.reshape(shape))
        m = np.broadcast_to(predicate(node, p, j, g.nk, env), np.broadcast_shapes(p.shape, j.shape))
        m = m.reshape(q.size, -1)
        anys[lo:lo + step], alls[lo:lo + step] = m.any(1), m.all(1)
    return anys, alls


def tile_states(node: ir.Node, g: B.Geometry, qb: np.ndarray, kb: np.ndarray,
                budget: int = 1 << 21) -> np.ndarray:
    """Exact states of blocks from the predicate on their tiles: the border first (a mixed
    border is PARTIAL), then whole tiles for the blocks whose border is uniform."""
    ti, tj = _border(g)
    anys, alls = _evaluate(node, g, qb, kb, ti, tj, budget)
    out = np.full(qb.size, PARTIAL, dtype=np.uint8)
    todo = np.flatnonzero(anys == alls)
    if todo.size:
        a, b = _evaluate(node, g, qb[todo], kb[todo], np.arange(g.bq, dtype=np.int64)[:, None],
                         np.arange(g.bk, dtype=np.int64)[None, :], budget)
        out[todo] = np.where(~a, EMPTY, np.where(b, FULL, PARTIAL))
    return out
