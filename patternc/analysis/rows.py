"""Exact keys-per-row counts without an ``nq x nk`` array.

Each primitive is split into *atoms* whose row structure is simple:

* interval atoms: for query position ``p`` the row is a few sorted, disjoint key intervals
  (band, window, causal, blocks, prefix, rows, cols, random keys, random key blocks);
* periodic atoms: ``(p - j) % m == 0`` (strided, the residue part of dilated) or
  ``j % m >= lo`` (the summary columns of fixed).

The pattern becomes a boolean formula over atoms. For a chunk of rows the interval end points
cut each row into segments on which every interval atom is constant (checked at the segment
start). On a segment the formula reduces to a function of the periodic atoms only, encoded as a
truth table (one bit per assignment of the periodic atoms). All-false and all-true segments count
0 and their length; the others are counted with prefix sums over one period ``L`` (the lcm of
the moduli the reduced formula reads): ``count[a, b) = G(b) - G(a)`` with
``G(x) = (x // L) * total + prefix[x % L]``. Work is ``O(nq * K)`` for ``K`` end points per row.

A mixed residue formula (both ``p - j`` and ``j`` residues) with a period above
``MAX_PERIOD_2D`` is enumerated key by key while that stays under ``MAX_ENUMERATED`` keys,
and otherwise counted by the segment length: an upper bound, flagged in ``RowCounts.exact``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from patternc import ir
from patternc.rng import random_key_blocks, random_keys

ROWS_PER_CHUNK = 1 << 16
CELLS_PER_CHUNK = 1 << 21  # rows x end points per chunk, to bound memory
MAX_PERIOD_2D = 2048
MAX_PERIOD_1D = 1 << 22
MAX_ENUMERATED = 1 << 26
MAX_PERIODIC = 5  # residue atoms per pattern: 2**5 truth-table bits fit an int64

# --------------------------------------------------------------------------- atoms


def concrete(x: ir.Int) -> int:
    """A concrete argument (patterns are concretized before they get here)."""
    if not isinstance(x, int):
        raise ir.PatternError(f"symbolic argument {x} was not evaluated")
    return x


@dataclass(frozen=True)
class Iv:
    """An interval atom: ``node`` is the primitive whose row is a union of intervals."""

    node: ir.Node


@dataclass(frozen=True)
class DMod:
    """``(p - j) % m == 0``."""

    m: int


@dataclass(frozen=True)
class JMod:
    """``j % m >= lo``."""

    m: int
    lo: int


Atom = Iv | DMod | JMod

# formula: ("const", bool) | ("atom", index) | ("not", f) | ("and", fs) | ("or", fs)
Formula = tuple


@dataclass
class _Compiler:
    atoms: list[Atom]

    def atom(self, a: Atom) -> Formula:
        if a not in self.atoms:
            self.atoms.append(a)
        return ("atom", self.atoms.index(a))

    def compile(self, node: ir.Node) -> Formula:
        match node:
            case ir.Full():
                return ("const", True)
            case ir.Empty():
                return ("const", False)
            case ir.Strided(s):
                return ("const", True) if s == 1 else self.atom(DMod(concrete(s)))
            case ir.Dilated(w, r):
                band = self.atom(Iv(ir.Band(concrete(w) * concrete(r))))
                return band if r == 1 else ("and", (band, self.atom(DMod(concrete(r)))))
            case ir.Fixed(l, c):
                blocks = self.atom(Iv(ir.Blocks(l)))
                size, summary = concrete(l), concrete(c)
                if summary >= size:
                    return ("const", True)
                return ("or", (blocks, self.atom(JMod(size, size - summary))))
            case ir.Global(t):
                return ("or", (self.atom(Iv(ir.Rows(t))), self.atom(Iv(ir.Cols(t)))))
            case ir.Union(parts):
                return ("or", tuple(self.compile(c) for c in parts))
            case ir.Intersect(parts):
                return ("and", tuple(self.compile(c) for c in parts))
            case ir.Diff(a, b):
                return ("and", (self.compile(a), ("not", self.compile(b))))
            case ir.Complement(a):
                return ("not", self.compile(a))
            case ir.Heads():
                raise ir.PatternError("a heads(...) pattern needs the number of heads")
        return self.atom(Iv(node))


def compile_pattern(node: ir.Node) -> tuple[Formula, list[Atom]]:
    """The formula of a concrete, head-free pattern and its atoms."""
    c = _Compiler([])
    return c.compile(node), c.atoms


def evaluate(f: Formula, env: list[np.ndarray | bool]) -> np.ndarray | bool:
    """Evaluate a formula with atom values (arrays broadcast together, or plain booleans)."""
    kind = f[0]
    if kind == "const":
        return f[1]
    if kind == "atom":
        return env[f[1]]
    if kind == "not":
        return np.logical_not(evaluate(f[1], env))
    vals = [evaluate(g, env) for g in f[1]]
    out = vals[0]
    for v in vals[1:]:
        out = (out & v) if kind == "and" else (out | v)
    return out


# --------------------------------------------------------------------------- interval rows


def merged(tokens: ir.TokenList, nk: int, clip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A token list as sorted disjoint ``[lo, hi)`` intervals, clipped to ``[0, nk)`` unless
    ``clip`` is False (query positions can be negative when ``nq > nk``)."""
    lo_cap, hi_cap = (0, nk) if clip else (-(1 << 62), 1 << 62)
    ivs = sorted((max(a, lo_cap), min(b, hi_cap)) for a, b in tokens.intervals(nk)
                 if min(b, hi_cap) > max(a, lo_cap))
    out: list[list[int]] = []
    for a, b in ivs:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    arr = np.array(out, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0].copy(), arr[:, 1].copy()


def in_tokens(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Membership of ``x`` in sorted disjoint intervals ``[lo, hi)`` (1-D, shared by all rows)."""
    if lo.size == 0:
        return np.zeros(x.shape, dtype=bool)
    k = np.searchsorted(lo, x, side="right") - 1
    return (k >= 0) & (x < hi[np.maximum(k, 0)])


Rows = tuple[np.ndarray, np.ndarray]  # (lo, hi): [R, m] per row, or [m] shared by every row


def intervals(node: ir.Node, p: np.ndarray, nk: int) -> Rows:
    """Sorted disjoint (possibly empty) key intervals of ``node`` for positions ``p``."""
    col = p[:, None]
    match node:
        case ir.Causal():
            return np.zeros_like(col), col + 1
        case ir.Window(left, right):
            return col - left, col + right + 1
        case ir.Band(w):
            return col - w, col + w + 1
        case ir.Blocks(b):
            start = col // b * b
            return start, start + b
        case ir.Rows(t):
            lo, hi = merged(t, nk, clip=False)
            hit = in_tokens(col, lo, hi)
            return np.zeros_like(col), np.where(hit, nk, 0)
        case ir.Cols(t):
            return merged(t, nk)
        case ir.Prefix(m):
            return np.zeros_like(col), np.where(col < m, concrete(m), 0)
        case ir.Random(r, seed):
            keys = random_keys(concrete(r), concrete(seed), p, nk)
            return keys, keys + 1
        case ir.RandomBlocks(r, b, seed):
            kb = random_key_blocks(concrete(r), concrete(b), concrete(seed), p // b, nk)
            return kb * b, (kb + 1) * b
    raise TypeError(f"not an interval primitive: {node!r}")


def member(lo: np.ndarray, hi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x[r, s]`` in row ``r``'s intervals (``lo``/``hi`` [R, m] sorted disjoint, or shared [m])."""
    if lo.ndim == 1:
        return in_tokens(x, lo, hi)
    if lo.shape[1] <= 4:
        return np.asarray(((lo[:, None, :] <= x[:, :, None]) & (x[:, :, None] < hi[:, None, :])).any(-1))
    # many intervals per row (random keys): one searchsorted over rows laid end to end
    rows = lo.shape[0]
    span = int(max(hi.max(initial=0), x.max(initial=0))) + 2
    off = np.arange(rows, dtype=np.int64)[:, None] * span
    flat_lo, flat_hi = (lo + off).ravel(), (hi + off).ravel()
    k = np.searchsorted(flat_lo, (x + off).ravel(), side="right") - 1
    # a hit in the previous row's intervals is impossible: rows are spaced ``span`` apart
    ok = (k >= 0) & ((x + off).ravel() < flat_hi[np.maximum(k, 0)])
    return ok.reshape(x.shape)


# --------------------------------------------------------------------------- residue counting


def _period_table(code: int, atoms: list[DMod | JMod], used: list[int], q: np.ndarray | None,
                  L: int) -> np.ndarray:
    """Prefix counts over one period of the reduced formula ``code``.

    ``q is None``: the formula reads only ``p - j`` residues (or only ``j`` residues); the table
    is 1-D over ``(p - j) % L`` (or ``j % L``). Otherwise it has one row per residue ``q = p % L``
    and runs over ``j % L``. Bit ``k`` of a truth-table index is periodic atom ``k``.
    """
    t = np.arange(L, dtype=np.int64)
    d = t if q is None else q[:, None] - t[None, :]
    idx = np.zeros(d.shape, dtype=np.int64)
    for k in used:
        at = atoms[k]
        v = (d % at.m == 0) if isinstance(at, DMod) else np.broadcast_to(t % at.m >= at.lo, d.shape)
        idx |= v.astype(np.int64) << k
    truth = (code >> idx) & 1
    zero = np.zeros((*truth.shape[:-1], 1), dtype=np.int64)
    return np.concatenate([zero, np.cumsum(truth, axis=-1)], axis=-1)


def _prefix_at(table: np.ndarray, x: np.ndarray, L: int, row: np.ndarray | None = None) -> np.ndarray:
    if row is None:
        return (x // L) * table[L] + table[x % L]
    return (x // L) * table[row, L] + table[row, x % L]


@dataclass
class _Residues:
    """Counts keys of a segment whose reduced formula (a truth table over periodic atoms) is mixed."""

    atoms: list[DMod | JMod]
    exact: bool = True

    def depends(self, code: int) -> list[int]:
        k = len(self.atoms)
        full = 1 << k
        return [i for i in range(k)
                if any(((code >> s) & 1) != ((code >> (s ^ (1 << i))) & 1) for s in range(full))]

    def count(self, code: int, p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        used = self.depends(code)
        L = math.lcm(*(self.atoms[i].m for i in used))
        kinds = {type(self.atoms[i]) for i in used}
        if len(kinds) == 1 and L <= MAX_PERIOD_1D:
            table = _period_table(code, self.atoms, used, None, L)
            if DMod in kinds:  # keys j in [a, b) are offsets d = p - j in [p - b + 1, p - a + 1)
                return _prefix_at(table, p - a + 1, L) - _prefix_at(table, p - b + 1, L)
            return _prefix_at(table, b, L) - _prefix_at(table, a, L)
        if L <= MAX_PERIOD_2D:
            qs, row = np.unique(p % L, return_inverse=True)
            table = _period_table(code, self.atoms, used, qs, L)
            return _prefix_at(table, b, L, row) - _prefix_at(table, a, L, row)
        return self._enumerate(code, p, a, b)

    def max_gap(self, code: int) -> float:
        """The longest step between consecutive keys of a mixed code's residue pattern (any run
        of that many keys holds one), over every query phase; inf when unknown or empty."""
        used = self.depends(code)
        L = math.lcm(*(self.atoms[i].m for i in used))
        if L > MAX_PERIOD_2D:
            return math.inf
        kinds = {type(self.atoms[i]) for i in used}
        q = None if len(kinds) == 1 else np.arange(L, dtype=np.int64)
        truth = np.diff(_period_table(code, self.atoms, used, q, L), axis=-1).reshape(-1, L) > 0
        worst = 0
        for row in truth:
            hits = np.flatnonzero(row)
            if hits.size == 0:
                return math.inf
            worst = max(worst, int(np.diff(np.append(hits, hits[0] + L)).max()))
        return worst

    def _enumerate(self, code: int, p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        lengths = np.maximum(b - a, 0)
        if int(lengths.sum()) > MAX_ENUMERATED:
            self.exact = False  # too many keys to visit: the segment length bounds the count
            return lengths
        seg = np.repeat(np.arange(lengths.size), lengths)
        j = np.arange(seg.size) - np.repeat(np.cumsum(lengths) - lengths, lengths) + a[seg]
        idx = np.zeros(seg.size, dtype=np.int64)
        for k, at in enumerate(self.atoms):
            v = ((p[seg] - j) % at.m == 0) if isinstance(at, DMod) else (j % at.m >= at.lo)
            idx |= v.astype(np.int64) << k
        return np.bincount(seg, weights=(code >> idx) & 1, minlength=lengths.size).astype(np.int64)


# --------------------------------------------------------------------------- the driver


@dataclass(frozen=True)
class RowCounts:
    """Keys per query row (``counts[i]`` for query ``i``) and whether every count is exact."""

    counts: np.ndarray
    exact: bool


def row_counts(node: ir.Node, nq: int, nk: int, keys: tuple[int, int] | None = None,
               rows: tuple[int, int] | None = None) -> RowCounts:
    """Keys per query row of a head-free pattern (symbolic arguments allowed).

    ``keys = (lo, hi)`` counts only keys in ``[lo, hi)``; ``rows = (lo, hi)`` only those query
    rows (the result then has ``hi - lo`` entries).
    """
    node = ir.concretize(node, nk)
    ir.check_arguments(node)
    klo, khi = (0, nk) if keys is None else (max(0, keys[0]), min(nk, keys[1]))
    r0, r1 = (0, nq) if rows is None else rows
    out = np.zeros(max(r1 - r0, 0), dtype=np.int64)
    if khi <= klo:
        return RowCounts(out, True)
    sweep = Sweep(node, nq, nk, klo, khi)
    if len(sweep.per) > MAX_PERIODIC:
        return _dense_counts(node, nq, nk, (klo, khi), (r0, r1))
    for lo, hi in sweep.chunks(r0, r1):
        _, _, _, counts = sweep.segments(lo, hi)
        out[lo - r0:hi - r0] = counts.sum(axis=1)
    return RowCounts(out, sweep.res.exact)


def has_pair(node: ir.Node, nq: int, nk: int) -> bool:
    """Whether the pattern holds any pair, stopping at the first chunk of rows that has one."""
    node = ir.concretize(node, nk)
    ir.check_arguments(node)
    sweep = Sweep(node, nq, nk, 0, nk)
    if len(sweep.per) > MAX_PERIODIC:
        return bool(row_counts(node, nq, nk).counts.any())
    return any(bool(sweep.segments(lo, hi)[3].any()) for lo, hi in sweep.chunks(0, nq))


class Sweep:
    """Rows of a concrete, head-free pattern cut into segments with exact key counts."""

    def __init__(self, node: ir.Node, nq: int, nk: int, klo: int, khi: int) -> None:
        self.formula, self.atoms = compile_pattern(node)
        self.nq, self.nk, self.klo, self.khi = nq, nk, klo, khi
        self.ivs = [i for i, a in enumerate(self.atoms) if isinstance(a, Iv)]
        self.per = [i for i, a in enumerate(self.atoms) if not isinstance(a, Iv)]
        self.res = _Residues([self.atoms[i] for i in self.per])  # type: ignore[misc]

    def chunks(self, r0: int, r1: int) -> list[tuple[int, int]]:
        step = _chunk_rows(self.atoms, self.nk)
        return [(lo, min(r1, lo + step)) for lo in range(r0, r1, step)]

    def segments(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positions ``p`` of query rows ``[lo, hi)``, segment starts and ends ``[R, S]``, and
        the number of pattern keys in each segment."""
        return self.segments_at(np.arange(lo, hi, dtype=np.int64) + (self.nk - self.nq))

    def segments_at(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``segments`` for arbitrary query positions ``p``."""
        a, b, counts, _ = _count_chunk(self.formula, self.atoms, self.ivs, self.per, self.res, p, self.nk,
                                       self.klo, self.khi)
        return p, a, b, counts

    def coded_segments(self, lo: int, hi: int) -> tuple[np.ndarray, ...]:
        """``segments`` plus each segment's truth-table code over the residue atoms (``code ==
        self.full``: every key; mixed codes: a residue pattern)."""
        p = np.arange(lo, hi, dtype=np.int64) + (self.nk - self.nq)
        a, b, counts, code = _count_chunk(self.formula, self.atoms, self.ivs, self.per, self.res, p,
                                          self.nk, self.klo, self.khi)
        if code is None:
            code = np.where(counts > 0, self.full, 0)
        return p, a, b, counts, code

    @property
    def full(self) -> int:
        return (1 << (1 << len(self.per))) - 1


def merge_intervals(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals ``[lo, hi)`` as sorted disjoint intervals."""
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    if lo.size == 0:
        return lo, hi
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    first = np.ones(lo.size, dtype=bool)
    first[1:] = lo[1:] > reach[:-1]
    idx = np.flatnonzero(first)
    return lo[idx], np.maximum.reduceat(hi, idx)


def _tile_spans(a: np.ndarray, b: np.ndarray, counts: np.ndarray, size: int,
                nkb: int) -> tuple[np.ndarray, np.ndarray]:
    """Marked tiles of one chunk of rows that starts at a block boundary, as disjoint spans
    ``[lo, hi)`` on the line ``local query block * (nkb + 1) + key block`` (a tile is marked
    when a segment with keys overlaps it)."""
    width = nkb + 1
    r, s = np.nonzero(counts > 0)
    base = (r // size) * width  # row r of the chunk is in its local query block r // size
    return merge_intervals(base + a[r, s] // size, base + (b[r, s] - 1) // size + 1)


def _tile_marks(a: np.ndarray, b: np.ndarray, counts: np.ndarray, size: int, nkb: int) -> np.ndarray:
    """``[query blocks, key blocks]`` marks of one chunk of rows (see ``_tile_spans``)."""
    width = nkb + 1
    local = -(-a.shape[0] // size)
    lo, hi = _tile_spans(a, b, counts, size, nkb)
    marks = np.bincount(lo, minlength=local * width) - np.bincount(hi, minlength=local * width)
    return np.cumsum(marks.reshape(local, width), axis=1)[:, :nkb] > 0


def _block_rows(size: int, nk: int) -> int:
    # rows per chunk: whole query blocks, and at most ~4M tile marks at a time
    width = -(-nk // size) + 1
    return max(size, min(ROWS_PER_CHUNK, CELLS_PER_CHUNK * 2 // width * size) // size * size)


def tile_rows(node: ir.Node, nq: int, nk: int, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first query block, marks[query blocks, key blocks])`` by chunks of query blocks:
    exact (marked iff non-empty) for patterns without residue atoms, a superset otherwise.
    ``node`` must be concrete."""
    sweep = Sweep(node, nq, nk, 0, nk)
    step = _block_rows(size, nk)
    for i0 in range(0, nq, step):
        _, a, b, counts = sweep.segments(i0, min(nq, i0 + step))
        yield i0 // size, _tile_marks(a, b, counts, size, -(-nk // size))


def counts_and_blocks(node: ir.Node, nq: int, nk: int,
                      size: int) -> tuple[RowCounts, tuple[float, int] | None]:
    """``row_counts`` and, in the same sweep, the exact (block density, heaviest query-block row).

    Segments with every key mark the tiles they overlap. A segment with a residue pattern whose
    longest step between keys is at most ``size`` marks every tile it covers whole, and its two
    end tiles by an exact count. Block figures are None when a step is longer (or the pattern
    has too many residue atoms): the caller asks the lowering then."""
    node = ir.concretize(node, nk)
    ir.check_arguments(node)
    sweep = Sweep(node, nq, nk, 0, nk)
    if len(sweep.per) > MAX_PERIODIC:
        return row_counts(node, nq, nk), None
    nqb, nkb = -(-nq // size), -(-nk // size)
    out = np.zeros(nq, dtype=np.int64)
    visited, heaviest, blocks_ok = 0, 0, True
    gaps: dict[int, float] = {}
    step = max(size, ROWS_PER_CHUNK // size * size)
    for i0 in range(0, nq if nk else 0, step):
        i1 = min(nq, i0 + step)
        p, a, b, counts, code = sweep.coded_segments(i0, i1)
        out[i0:i1] = counts.sum(axis=1)
        if blocks_ok:
            spans = _coded_tile_spans(sweep, gaps, p, a, b, counts, code, size, nkb)
            if spans is None:
                blocks_ok = False
                continue
            lo, hi = spans
            per_row = np.bincount(lo // (nkb + 1), weights=hi - lo, minlength=-(-(i1 - i0) // size))
            visited += int(per_row.sum())
            heaviest = max(heaviest, int(per_row.max(initial=0)))
    rc = RowCounts(out, sweep.res.exact)
    if not blocks_ok:
        return rc, None
    return rc, (visited / (nqb * nkb) if nqb * nkb else 0.0, heaviest)


def _coded_tile_spans(sweep: Sweep, gaps: dict[int, float], p: np.ndarray, a: np.ndarray, b: np.ndarray,
                      counts: np.ndarray, code: np.ndarray, size: int,
                      nkb: int) -> tuple[np.ndarray, np.ndarray] | None:
    width = nkb + 1
    r, s = np.nonzero(counts > 0)
    base = (r // size) * width  # rows of a chunk start at a block boundary
    sa, sb, sc = a[r, s], b[r, s], code[r, s]
    whole = sc == sweep.full
    los, his = [base[whole] + sa[whole] // size], [base[whole] + (sb[whole] - 1) // size + 1]
    mixed = np.flatnonzero(~whole)
    for c in np.unique(sc[mixed]).tolist():
        if c not in gaps:
            gaps[c] = sweep.res.max_gap(c)
        if gaps[c] > size:
            return None
    if mixed.size:
        pm, am, bm, cm, bb = p[r[mixed]], sa[mixed], sb[mixed], sc[mixed], base[mixed]
        first, last = am // size, (bm - 1) // size
        los.append(bb + first + 1)  # tiles covered whole hold a key: the step is at most size
        his.append(bb + last)
        for tile, lo_key, hi_key in ((first, am, np.minimum(bm, (first + 1) * size)),
                                     (last, np.maximum(am, last * size), bm)):
            hit = np.zeros(mixed.size, dtype=bool)
            for c in np.unique(cm).tolist():
                sel = cm == c
                hit[sel] = sweep.res.count(c, pm[sel], lo_key[sel], hi_key[sel]) > 0
            los.append(bb[hit] + tile[hit])
            his.append(bb[hit] + tile[hit] + 1)
    return merge_intervals(np.concatenate(los), np.concatenate(his))


def residue_atoms(node: ir.Node) -> int:
    """How many distinct residue atoms a concrete pattern has (0: every segment is all keys)."""
    return sum(1 for a in compile_pattern(node)[1] if not isinstance(a, Iv))


def block_graph(node: ir.Node, n: int, size: int) -> np.ndarray:
    """``[nb, nb]`` booleans, ``nb = ceil(n / size)``: a superset of the non-empty blocks of the
    square pattern (a segment with keys marks every block it overlaps); all True when the
    pattern has too many residue atoms to sweep."""
    node = ir.concretize(node, n)
    ir.check_arguments(node)
    nb = -(-n // size)
    if residue_atoms(node) > MAX_PERIODIC:
        return np.ones((nb, nb), dtype=bool)
    return np.concatenate([m for _, m in tile_rows(node, n, n, size)] or [np.zeros((0, nb), dtype=bool)])


def _dense_counts(node: ir.Node, nq: int, nk: int, keys: tuple[int, int],
                  rows: tuple[int, int]) -> RowCounts:
    # more residue atoms than a truth-table code holds: visit every pair while that is cheap,
    # else bound each row by the number of keys in range
    width = keys[1] - keys[0]
    if (rows[1] - rows[0]) * nk > MAX_ENUMERATED:
        return RowCounts(np.full(rows[1] - rows[0], width, dtype=np.int64), False)
    out = np.zeros(rows[1] - rows[0], dtype=np.int64)
    step = max(1, CELLS_PER_CHUNK // max(nk, 1))
    for lo in range(rows[0], rows[1], step):
        hi = min(rows[1], lo + step)
        out[lo - rows[0]:hi - rows[0]] = dense_rows(node, nq, nk, (lo, hi))[:, keys[0]:keys[1]].sum(axis=1)
    return RowCounts(out, True)


def _chunk_rows(atoms: list[Atom], nk: int) -> int:
    width = 2
    for a in atoms:
        if isinstance(a, Iv):
            node = a.node
            if isinstance(node, ir.Cols):
                width += 2 * merged(node.tokens, nk)[0].size
            elif isinstance(node, ir.Random):
                width += 2 * min(int(node.r), nk)
            elif isinstance(node, ir.RandomBlocks):
                width += 2 * min(int(node.r), -(-nk // int(node.b)))
            else:
                width += 2
    return max(1, min(ROWS_PER_CHUNK, CELLS_PER_CHUNK // width))


def _interval_rows(atoms: list[Atom], ivs: list[int], p: np.ndarray, nk: int, klo: int,
                   khi: int) -> dict[int, Rows]:
    # clipping to the counted key range keeps membership inside it and keeps rows sorted
    out = {}
    for i in ivs:
        lo, hi = intervals(atoms[i].node, p, nk)  # type: ignore[union-attr]
        out[i] = (np.clip(lo, klo, khi), np.clip(hi, klo, khi))
    return out


def _count_chunk(formula: Formula, atoms: list[Atom], ivs: list[int], per: list[int], res: _Residues,
                 p: np.ndarray, nk: int, klo: int,
                 khi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    R = p.size
    rows = _interval_rows(atoms, ivs, p, nk, klo, khi)
    cuts = [np.full((R, 1), klo, dtype=np.int64), np.full((R, 1), khi, dtype=np.int64)]
    for lo, hi in rows.values():
        for e in (lo, hi):
            cuts.append(np.broadcast_to(e, (R, e.shape[-1])) if e.ndim == 1 else e)
    bp = np.concatenate(cuts, axis=1)
    bp.sort(axis=1)
    a, b = bp[:, :-1], bp[:, 1:]
    env: list[np.ndarray | bool] = [False] * len(atoms)
    for i, (lo, hi) in rows.items():
        env[i] = member(lo, hi, a)
    length = b - a
    if not per:
        return a, b, length * np.asarray(evaluate(formula, env), dtype=bool), None
    code = np.zeros(a.shape, dtype=np.int64)
    for s in range(1 << len(per)):
        for k, i in enumerate(per):
            env[i] = bool((s >> k) & 1)
        code |= np.asarray(evaluate(formula, env), dtype=np.int64) << s
    full = (1 << (1 << len(per))) - 1
    counts = np.where(code == full, length, 0)
    mixed = (code != 0) & (code != full) & (length > 0)
    if mixed.any():
        ri, si = np.nonzero(mixed)
        codes = code[ri, si]
        for c in np.unique(codes):
            sel = codes == c
            rr, ss = ri[sel], si[sel]
            counts[rr, ss] = res.count(int(c), p[rr], a[rr, ss], b[rr, ss])
    return a, b, counts, code


def dense_rows(node: ir.Node, nq: int, nk: int, rows: tuple[int, int]) -> np.ndarray:
    """The pattern's boolean rows ``[rows[0], rows[1])`` as ``[R, nk]``: for small sizes only."""
    node = ir.concretize(node, nk)
    ir.check_arguments(node)
    formula, atoms = compile_pattern(node)
    p = np.arange(*rows, dtype=np.int64) + (nk - nq)
    j = np.broadcast_to(np.arange(nk, dtype=np.int64), (p.size, nk))
    env: list[np.ndarray | bool] = []
    for at in atoms:
        if isinstance(at, Iv):
            lo, hi = intervals(at.node, p, nk)
            env.append(member(np.clip(lo, 0, nk), np.clip(hi, 0, nk), j))
        elif isinstance(at, DMod):
            env.append((p[:, None] - j) % at.m == 0)
        else:
            env.append(j % at.m >= at.lo)
    return np.broadcast_to(np.asarray(evaluate(formula, env), dtype=bool), (p.size, nk))
