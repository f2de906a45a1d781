"""Exact keys-per-row counts without an ``nq x nk`` array: the sweep.

The pattern is a boolean formula over atoms (``atoms``). For a chunk of rows the interval end
points cut each row into segments on which every interval atom is constant (tested at the
segment start). On a segment the formula reduces to a function of the residue atoms only, a
truth table over their assignments: all-false segments count 0, all-true ones their length, the
others are counted by prefix sums over one period (``residues``). Work is ``O(nq * K)`` for
``K`` end points per row, vectorized over chunks of rows. More than ``MAX_PERIODIC`` residue
atoms: every pair is visited while that is cheap, else rows are bounded by their width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from patternc import ir
from patternc.analysis.atoms import (
    Atom,
    DMod,
    Formula,
    Iv,
    Rows,
    compile_pattern,
    evaluate,
    intervals,
    member,
    merged,
)
from patternc.analysis.residues import MAX_ENUMERATED, Residues

ROWS_PER_CHUNK = 1 << 16
CELLS_PER_CHUNK = 1 << 21  # rows x end points per chunk, to bound memory
MAX_PERIODIC = 5  # residue atoms per pattern: 2**5 truth-table bits fit an int64


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
        self.res = Residues([self.atoms[i] for i in self.per])  # type: ignore[misc]

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


def _count_chunk(formula: Formula, atoms: list[Atom], ivs: list[int], per: list[int], res: Residues,
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
