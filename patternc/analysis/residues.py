"""Counting keys of a segment whose formula reduces to a residue pattern (a truth table over
the residue atoms): prefix sums over one period ``L`` (the lcm of the moduli it reads),
``count[a, b) = G(b) - G(a)``, ``G(x) = (x // L) * total + prefix[x % L]``; 1-D tables when it
reads only ``p - j`` or only ``j`` residues, ``(p % L) x L`` tables when both. Longer mixed
periods are enumerated key by key while that stays under ``MAX_ENUMERATED`` keys, and otherwise
bounded by the segment length (``Residues.exact`` turns False)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from patternc.analysis.atoms import DMod, JMod

MAX_PERIOD_2D = 2048
MAX_PERIOD_1D = 1 << 22
MAX_ENUMERATED = 1 << 26

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
class Residues:
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
