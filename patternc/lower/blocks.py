"""Per-primitive block classification, analytic: each primitive touches only the blocks it covers.

Every function takes a concrete primitive and the :class:`Geometry` and returns a
:class:`~patternc.lower.rle.BlockRLE` over ``(query block, key block)``. Most results are exact;
a few primitives mark candidate blocks UNKNOWN and leave them to an exact resolver
(:mod:`patternc.lower.combine`): ``dilated`` and ``strided`` are functions of ``d = p - j``
only, which a 1-D prefix sum over ``d`` decides in O(1) per block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from patternc import ir
from patternc.lower.predicate import Drawn
from patternc.lower.rle import (
    EMPTY,
    FULL,
    PARTIAL,
    UNKNOWN,
    BlockRLE,
    coalesce,
    from_intervals,
    single_blocks,
)
from patternc.rng import random_key_blocks, random_keys


@dataclass(frozen=True)
class Geometry:
    """Lengths and block sizes; query ``i`` sits at position ``p = i + off`` (SPEC alignment)."""

    nq: int
    nk: int
    bq: int
    bk: int
    # key blocks in residue order mod ``perm`` (:meth:`to_perm`): periodic key patterns
    # (``fixed``) then cost a few runs per row instead of one per period
    perm: int = 1
    # the residue classes grouped into segments ``[segments[q], segments[q + 1])`` (empty: one
    # class each); a group lists its blocks in natural order, so a natural run splits into one
    # piece per group, not per class (``fixed``: the classes with summary keys and the others)
    segments: tuple[int, ...] = ()
    # classifications already made at this geometry (one lowering: its branches share subtrees),
    # and the random primitives' draws by node (:class:`~patternc.lower.predicate.Drawn`), which
    # tiles of undecided blocks look up instead of drawing again
    memo: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def off(self) -> int:
        return self.nk - self.nq

    @property
    def nqb(self) -> int:
        return -(-self.nq // self.bq)

    @property
    def nkb(self) -> int:
        return -(-self.nk // self.bk)

    def q_span(self, qb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and last (inclusive) position ``p`` of query blocks ``qb``."""
        return qb * self.bq + self.off, np.minimum((qb + 1) * self.bq, self.nq) - 1 + self.off

    def k_span(self, kb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and last (inclusive) key of key blocks ``kb``."""
        return kb * self.bk, np.minimum((kb + 1) * self.bk, self.nk) - 1

    def seg(self) -> np.ndarray:
        """Residue segments of the groups: group ``q`` holds classes ``[seg[q], seg[q + 1])``."""
        return self._order[0]

    @cached_property
    def _order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(seg, offsets, column of each key block, key block of each column, first column of
        each group at or after each natural boundary x)``, built once per geometry."""
        seg = np.array(self.segments or range(self.perm + 1), dtype=np.int64)
        s, M = seg[1:] - seg[:-1], self.perm
        off = np.concatenate([[0], np.cumsum(s * (self.nkb // M) + np.clip(self.nkb % M - seg[:-1], 0, s))])
        col = np.arange(self.nkb, dtype=np.int64)
        q = np.searchsorted(off, col, side="right") - 1
        i = col - off[q]
        kb = M * (i // s[q]) + seg[q] + i % s[q]  # the i-th block of group q, natural order
        pos = np.empty_like(kb)
        pos[kb] = col
        x = np.arange(self.nkb + 1, dtype=np.int64)[:, None]
        at = off[:-1] + s * (x // M) + np.clip(x % M - seg[:-1], 0, s)
        return seg, off, pos, kb, at

    def group_columns(self, x: np.ndarray) -> np.ndarray:
        """``[..., Q]``: per group, the residue-order column of its first key block at or after
        natural boundary ``x`` (``0 <= x <= nkb``): a natural range ``[x, y)`` holds the columns
        ``[group_columns(x), group_columns(y))`` of each group."""
        return self._order[4][x]

    def residue_offsets(self) -> np.ndarray:
        """Where each group of key blocks starts in residue order (``Q + 1`` entries, the last is
        ``nkb``); with one class per group, where each residue class mod ``perm`` starts."""
        return self._order[1]

    def to_perm(self, kb: np.ndarray) -> np.ndarray:
        """Column of key blocks ``kb`` in residue order: their group, then their rank in it."""
        return kb if self.perm == 1 else self._order[2][kb]

    def from_perm(self, col: np.ndarray) -> np.ndarray:
        """Key blocks of residue-order columns ``col`` (inverse of :meth:`to_perm`)."""
        return col if self.perm == 1 else self._order[3][col]

    def all_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        qb = np.arange(self.nqb, dtype=np.int64)
        return (qb, *self.q_span(qb))


# ----------------------------------------------------------------------------- interval rows


def interval_rows(g: Geometry, ne_lo: np.ndarray, ne_hi: np.ndarray, f_lo: np.ndarray,
                  f_hi: np.ndarray) -> BlockRLE:
    """Rows whose keys form one interval: ``[ne_lo, ne_hi]`` is the union over the block's
    queries of their key intervals (contiguous), ``[f_lo, f_hi]`` the intersection (inclusive
    token bounds, unclipped; ``lo > hi`` is empty). Blocks meeting the union are non-empty,
    blocks inside the intersection FULL."""
    bk, nk, C = g.bk, g.nk, g.nkb
    rows = np.arange(g.nqb, dtype=np.int64)
    ne_lo, ne_hi = np.maximum(ne_lo, 0), np.minimum(ne_hi, nk - 1)
    has = ne_lo <= ne_hi
    a = np.where(has, ne_lo // bk, 0)
    b = np.where(has, ne_hi // bk + 1, 0)
    f_lo, f_hi = np.maximum(f_lo, 0), np.minimum(f_hi, nk - 1)
    fa = -(-f_lo // bk)
    fb = np.where(f_hi >= nk - 1, C, (f_hi + 1) // bk)
    hasf = has & (f_lo <= f_hi) & (fa < fb)
    fa, fb = np.where(hasf, fa, a), np.where(hasf, fb, a)
    if C == 0:
        r3, st = np.concatenate([rows, rows, rows]), np.repeat(_PFP, rows.size)
        return from_intervals(g.nqb, C, r3, np.concatenate([a, fa, fb]), np.concatenate([fa, fb, b]), st)
    # 0 <= a <= fa <= fb <= b <= C: per row the runs EMPTY, PARTIAL, FULL, PARTIAL, EMPTY from
    # these starts, the empty ones dropped; already in order, no sort (from_intervals sorts)
    starts = np.stack([np.zeros_like(a), a, fa, fb, b], axis=1).reshape(-1)
    stops = np.stack([a, fa, fb, b, np.full_like(a, C)], axis=1).reshape(-1)
    keep = np.flatnonzero(starts < stops)
    return coalesce(g.nqb, C, np.repeat(rows, 5)[keep], starts[keep], np.tile(_EPFPE, rows.size)[keep])


_PFP = np.array([PARTIAL, FULL, PARTIAL], dtype=np.uint8)
_EPFPE = np.array([EMPTY, PARTIAL, FULL, PARTIAL, EMPTY], dtype=np.uint8)


def window(g: Geometry, left: int, right: int) -> BlockRLE:
    """``-right <= p - j <= left``: keys ``[p - left, p + right]``."""
    _, p0, p1 = g.all_rows()
    return interval_rows(g, p0 - left, p1 + right, p1 - left, p0 + right)


def causal(g: Geometry) -> BlockRLE:
    _, p0, p1 = g.all_rows()
    lo = np.full(p0.shape, -1, dtype=np.int64)
    return interval_rows(g, lo, p1, lo, p0)


def blocks(g: Geometry, b: int) -> BlockRLE:
    """``p // b == j // b``: the queries' b-blocks, FULL where the block row sits in one b-block."""
    _, p0, p1 = g.all_rows()
    b0, b1 = p0 // b, p1 // b
    one = b0 == b1
    f_lo, f_hi = np.where(one, b0 * b, 1), np.where(one, b0 * b + b - 1, 0)
    return interval_rows(g, b0 * b, b1 * b + b - 1, f_lo, f_hi)


def steps(g: Geometry, lq: int, lk: int, shift: int) -> BlockRLE:
    """``j // lk < (p + shift) // lq``: position ``p`` sees the key prefix ``[0, lk * ((p + shift)
    // lq))``, nondecreasing in ``p``; a block row's union is its last row's prefix, its
    intersection its first row's (exact: a block past the first row's prefix misses a pair)."""
    _, p0, p1 = g.all_rows()
    lo = np.zeros(p0.shape, dtype=np.int64)
    return interval_rows(g, lo, lk * ((p1 + shift) // lq) - 1, lo, lk * ((p0 + shift) // lq) - 1)


def d_candidates(g: Geometry, lo: int, hi: int) -> BlockRLE:
    """Every block meeting ``lo <= d <= hi`` marked UNKNOWN (for a d-only resolver)."""
    rle = window(g, hi, -lo) if lo <= hi else window(g, -1, -1)
    st = np.where(rle.state == EMPTY, EMPTY, UNKNOWN).astype(np.uint8)
    return BlockRLE(rle.R, rle.C, rle.row, rle.start, st)


def dilated(g: Geometry, w: int, r: int) -> BlockRLE:
    if r == 1:
        return window(g, w, w)
    return d_candidates(g, -w * r, w * r)


def strided(g: Geometry, s: int) -> BlockRLE:
    """``d % s == 0``: a tile holds every ``d`` of a range as long as its rows + columns - 1.
    When full tiles span at least ``s`` every one of them is PARTIAL (FULL for ``s == 1``) and
    only short edge tiles are left UNKNOWN; otherwise each multiple of ``s`` in a row's range
    of ``d`` lights a short run of key blocks, computed directly (exact)."""
    R, C = g.nqb, g.nkb
    rows = np.arange(R, dtype=np.int64)
    if s == 1:
        return from_intervals(R, C, rows, np.zeros(R), np.full(R, C), FULL)
    if g.bq + g.bk - 1 < s:
        return _strided_sparse(g, s)
    p0, p1 = g.q_span(rows)
    last_k = g.nk - (C - 1) * g.bk  # keys in the last key block
    short_row = (p1 - p0 + 1) + g.bk - 1 < s  # the row's full-width tiles are too short
    short_last = (p1 - p0 + 1) + last_k - 1 < s  # its tile in the last key block is
    body = np.where(short_row, UNKNOWN, PARTIAL)
    tail = np.where(short_last, UNKNOWN, PARTIAL)
    c0 = np.concatenate([np.zeros(R), np.full(R, C - 1)])
    c1 = np.concatenate([np.full(R, C - 1), np.full(R, C)])
    return from_intervals(R, C, np.concatenate([rows, rows]), c0, c1, np.concatenate([body, tail]))


def _strided_sparse(g: Geometry, s: int) -> BlockRLE:
    """``strided(s)`` with tiles shorter than ``s``: key block ``kb`` (not the last) of a row
    holds ``d = m s`` iff ``p0 - m s - bk + 1 <= kb bk <= p1 - m s``; these runs are disjoint."""
    bk, C = g.bk, g.nkb
    qb, p0, p1 = g.all_rows()
    m_lo = -((-(p0 - (g.nk - 1))) // s)  # ceil((p0 - (nk - 1)) / s): smallest multiple in range
    m_hi = p1 // s
    cnt = np.maximum(m_hi - m_lo + 1, 0)
    r = np.repeat(qb, cnt)
    m = np.arange(int(cnt.sum()), dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt - m_lo, cnt)
    a = -(-(p0[r] - m * s - bk + 1) // bk)
    b = (p1[r] - m * s) // bk + 1
    a, b = np.clip(a, 0, C - 1), np.clip(b, 0, C - 1)
    ok = a < b
    r, a, b = r[ok], a[ok], b[ok]
    one = (p1 - p0 == 0)[r] & (bk == 1)
    # the last key block (maybe short), decided on its own d-range
    lj0, lj1 = g.k_span(np.array([C - 1]))
    dmin, dmax = p0 - lj1[0], p1 - lj0[0]
    hit = (dmax // s) * s >= dmin
    full = hit & (p1 == p0) & (lj1[0] == lj0[0])
    tail = np.where(full, FULL, PARTIAL)
    rows = np.concatenate([r, qb[hit]])
    return from_intervals(g.nqb, C, rows, np.concatenate([a, np.full(int(hit.sum()), C - 1)]),
                          np.concatenate([b, np.full(int(hit.sum()), C)]),
                          np.concatenate([np.where(one, FULL, PARTIAL), tail[hit]]))


# ----------------------------------------------------------------------------- 1-D profiles


def count_states(cnt: np.ndarray, size: np.ndarray) -> np.ndarray:
    """EMPTY / PARTIAL / FULL from the number of pattern pairs in a block and its area."""
    # a lookup, not nested np.where (which branches on every entry)
    return _COUNT_STATES[2 * (cnt == 0).view(np.uint8) + (cnt == size).view(np.uint8)]


_COUNT_STATES = np.array([PARTIAL, FULL, EMPTY, EMPTY], dtype=np.uint8)
"""By ``2 * (no pair) + (every pair)``."""


def rows_from_cover(g: Geometry, cover: Callable[[np.ndarray], np.ndarray]) -> BlockRLE:
    """A pattern of the query position only; ``cover(x)`` counts member positions below ``x``."""
    qb, p0, p1 = g.all_rows()
    st = count_states(cover(p1 + 1) - cover(p0), p1 - p0 + 1)
    return BlockRLE(g.nqb, g.nkb, qb, np.zeros(g.nqb, dtype=np.int64), st)


def cols_from_cover(g: Geometry, cover: Callable[[np.ndarray], np.ndarray]) -> BlockRLE:
    """A pattern of the key only (``cover(x)``: member keys below ``x``): one column profile,
    the same for every row."""
    kb = np.arange(g.nkb, dtype=np.int64)
    j0, j1 = g.k_span(kb)
    st = count_states(cover(j1 + 1) - cover(j0), j1 - j0 + 1)[g.from_perm(kb)]
    change = np.ones(st.size, dtype=bool)
    change[1:] = st[1:] != st[:-1]
    starts, sts = kb[change], st[change]
    R = g.nqb
    return BlockRLE(R, g.nkb, np.repeat(np.arange(R, dtype=np.int64), starts.size), np.tile(starts, R),
                    np.tile(sts, R))


# ----------------------------------------------------------------------------- fixed


def residue_count(x: np.ndarray, l: int, c: int) -> np.ndarray:
    """Keys ``j`` in ``[0, x)`` with ``j % l >= l - c``."""
    return (x // l) * c + np.maximum(0, x % l - (l - c))


def fixed_columns(g: Geometry, l: int, c: int) -> BlockRLE:
    return cols_from_cover(g, lambda x: residue_count(x, l, c))


def fixed_resolve(g: Geometry, l: int, c: int, qb: np.ndarray, kb: np.ndarray) -> np.ndarray:
    """Exact states of blocks of ``fixed(l, c)``: FULL when every key outside the summary
    columns lies in the single l-block of all the block's queries."""
    p0, p1 = g.q_span(qb)
    j0, j1 = g.k_span(kb)
    res = residue_count(j1 + 1, l, c) - residue_count(j0, l, c)
    width = j1 - j0 + 1
    same = p0 // l == p1 // l
    L = p0 // l
    # non-summary keys of the block outside the l-block L (before it and after it)
    lo_end = np.clip(L * l, j0, j1 + 1)
    hi_start = np.clip(L * l + l, j0, j1 + 1)
    outside = ((lo_end - j0) - (residue_count(lo_end, l, c) - residue_count(j0, l, c))
               + (j1 + 1 - hi_start) - (residue_count(j1 + 1, l, c) - residue_count(hi_start, l, c)))
    full = (res == width) | (same & (outside == 0))
    meets = (p0 // l <= j1 // l) & (j0 // l <= p1 // l)
    return np.where(full, FULL, np.where((res > 0) | meets, PARTIAL, EMPTY)).astype(np.uint8)


# ----------------------------------------------------------------------------- random


def _points(g: Geometry, lin: np.ndarray, pairs: np.ndarray) -> BlockRLE:
    """Blocks ``lin = qb * nkb + kb`` with a known number of pattern pairs (repeats are summed;
    zero pairs listed nowhere)."""
    lin, cnt = _block_sums(lin, pairs)
    q = lin // g.nkb
    k = lin - q * g.nkb
    p0, p1 = g.q_span(q)
    j0, j1 = g.k_span(k)
    st = count_states(cnt, (p1 - p0 + 1) * (j1 - j0 + 1))
    return single_blocks(g.nqb, g.nkb, q, k, st, EMPTY, ordered=True)  # no pairs: not listed


def _block_sums(lin: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys ``lin`` (sorted) and the sum of the weights ``w`` (>= 0) of each."""
    if lin.size == 0:
        return lin, w
    wmax = int(w.max()) + 1
    if int(lin.max()) < ((1 << 62) // wmax):
        # equal keys are summed, so their order does not matter: one plain sort of the key and
        # weight packed into one integer instead of a stable argsort and two gathers
        key = np.sort(lin * wmax + w)
        lin = key // wmax
        w = key - lin * wmax
    else:  # pragma: no cover (keys beyond 2^62 / weight)
        order = np.argsort(lin, kind="stable")
        lin, w = lin[order], w[order]
    new = np.ones(lin.size, dtype=bool)
    new[1:] = lin[1:] != lin[:-1]
    first = np.flatnonzero(new)
    return lin[first], np.add.reduceat(w, first)


def random(g: Geometry, r: int, seed: int) -> BlockRLE:
    """``random(r, seed)``: each query's keys from the generator, counted per block."""
    i = np.arange(g.nq, dtype=np.int64)
    keys = random_keys(r, seed, i + g.off, g.nk)
    g.memo[ir.Random(r, seed)] = Drawn.of(i + g.off, keys)
    qb = np.repeat(i // g.bq, keys.shape[1])
    kb = keys.reshape(-1) // g.bk
    return _points(g, qb * g.nkb + kb, np.ones(kb.size, dtype=np.int64))


def random_blocks(g: Geometry, r: int, b: int, seed: int) -> BlockRLE:
    """``random_blocks(r, b, seed)``: per overlap of a query block with a b-block of queries,
    the chosen key b-blocks, weighted by the overlap of rows and of keys."""
    qb, p0, p1 = g.all_rows()
    first, count = p0 // b, p1 // b - p0 // b + 1
    # (plan row, query b-block) pairs and how many queries they share
    pq = np.repeat(qb, count)
    B = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count - first, count)
    rows = np.minimum(p1[pq], B * b + b - 1) - np.maximum(p0[pq], B * b) + 1
    # the rows tile the positions, so their b-blocks are the consecutive integers B[0]..B[-1]
    # (B is nondecreasing): no unique needed
    uniq = np.arange(int(B[0]), int(B[-1]) + 1, dtype=np.int64) if B.size else B
    table = random_key_blocks(r, b, seed, uniq, g.nk)
    g.memo[ir.RandomBlocks(r, b, seed)] = Drawn.of(uniq, table)
    # [pairs, k] (a take: rows of a 2-D index cost more)
    chosen = np.take(table, B - (B[0] if B.size else 0), axis=0)
    kq = chosen.shape[1]
    K = chosen.reshape(-1)
    k0, k1 = K * b, np.minimum(K * b + b, g.nk) - 1
    if g.bk % b == 0:
        # every key b-block lies in one key block: one point per draw, no spreading
        lin = (pq * g.nkb)[:, None] + (k0 // g.bk).reshape(pq.size, kq)
        w = rows[:, None] * (k1 - k0 + 1).reshape(pq.size, kq)
        return _points(g, lin.reshape(-1), w.reshape(-1))
    pq, rows = np.repeat(pq, kq), np.repeat(rows, kq)
    first_kb, nkb = k0 // g.bk, k1 // g.bk - k0 // g.bk + 1
    pq2 = np.repeat(pq, nkb)
    kb = np.arange(int(nkb.sum()), dtype=np.int64) - np.repeat(np.cumsum(nkb) - nkb - first_kb, nkb)
    j0, j1 = g.k_span(kb)
    cols = np.minimum(j1, np.repeat(k1, nkb)) - np.maximum(j0, np.repeat(k0, nkb)) + 1
    return _points(g, pq2 * g.nkb + kb, np.repeat(rows, nkb) * cols)


def permute(a: BlockRLE, g: Geometry) -> BlockRLE:
    """Runs over natural key blocks -> runs over ``g``'s residue order (each run splits into at
    most one run per group of residue classes)."""
    if g.perm == 1:
        return a
    off = g.residue_offsets()
    M = off.size - 1  # groups
    r = np.arange(M, dtype=np.int64)[None, :]
    # the blocks of group r in [start, stop) are a range of its columns
    c0, c1 = g.group_columns(a.start), g.group_columns(a.stop)
    # the non-empty pieces tile every row exactly (a bijection of the columns). A row's pieces go
    # group by group, each group in run order: piece (i, r) of a row whose runs are
    # [first, first + k) lands at M * first + r * k + (i - first), in order without a sort
    i = np.arange(a.row.size, dtype=np.int64)
    heads = np.flatnonzero(a.start == 0)  # every row's first run starts at column 0
    k = np.diff(np.append(heads, a.row.size))
    first, k = np.repeat(heads, k), np.repeat(k, k)
    dest = (M * first + (i - first))[:, None] + r * k[:, None]
    rows, cols = np.repeat(a.row, M), np.empty(dest.size, dtype=np.int64)
    states, some = np.empty(dest.size, dtype=np.uint8), np.empty(dest.size, dtype=bool)
    cols[dest], states[dest], some[dest] = c0, a.state[:, None], c0 < c1
    i = np.flatnonzero(some)
    return coalesce(a.R, a.C, rows[i], cols[i], states[i])


def primitive(node: ir.Node, g: Geometry) -> BlockRLE:
    """Classification of a primitive that is not a function of ``p`` or ``j`` alone, with key
    blocks in ``g``'s column order."""
    return permute(_primitive(node, g), g)


def _primitive(node: ir.Node, g: Geometry) -> BlockRLE:
    match node:
        case ir.Causal():
            return causal(g)
        case ir.Window(left, right):
            return window(g, int(left), int(right))
        case ir.Band(w):
            return window(g, int(w), int(w))
        case ir.Dilated(w, r):
            return dilated(g, int(w), int(r))
        case ir.Strided(s):
            return strided(g, int(s))
        case ir.Blocks(b):
            return blocks(g, int(b))
        case ir.Random(r, seed):
            return random(g, int(r), int(seed))
        case ir.RandomBlocks(r, b, seed):
            return random_blocks(g, int(r), int(b), int(seed))
        case ir.Steps(lq, lk, shift):
            return steps(g, int(lq), int(lk), int(shift))
    raise TypeError(f"not a block primitive: {node!r}")
