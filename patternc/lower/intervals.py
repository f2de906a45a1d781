"""Sets of integers as sorted disjoint half-open intervals: patterns of ``p`` alone or ``j`` alone.

``rows(...)``, ``cols(...)`` and operators over them are sets of query positions (or keys); their
block states need only how many members each block's range holds, which :meth:`IntervalSet.cover`
answers from the boundaries, in O(log k) per block and without touching every token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from patternc import ir


@dataclass(frozen=True, eq=False)
class IntervalSet:
    """Members ``[starts[i], ends[i])``, sorted, disjoint and not touching, within ``[lo, hi)``."""

    lo: int
    hi: int
    starts: np.ndarray
    ends: np.ndarray

    @staticmethod
    def of(lo: int, hi: int, starts: np.ndarray, ends: np.ndarray) -> IntervalSet:
        """Normalize any intervals (overlapping, unsorted, empty) clipped to ``[lo, hi)``."""
        s, e = np.clip(np.asarray(starts, np.int64), lo, hi), np.clip(np.asarray(ends, np.int64), lo, hi)
        keep = s < e
        s, e = s[keep], e[keep]
        if s.size == 0:
            return IntervalSet(lo, hi, s, e)
        order = np.argsort(s, kind="stable")
        s, e = s[order], np.maximum.accumulate(e[order])
        # a new run starts where an interval begins after everything before it has ended
        new = np.ones(s.size, dtype=bool)
        new[1:] = s[1:] > e[:-1]
        idx = np.flatnonzero(new)
        return IntervalSet(lo, hi, s[idx], np.append(e[idx[1:] - 1], e[-1]))

    def complement(self) -> IntervalSet:
        s = np.concatenate([[self.lo], self.ends])
        e = np.concatenate([self.starts, [self.hi]])
        return IntervalSet.of(self.lo, self.hi, s, e)

    def _sweep(self, other: IntervalSet, need: int) -> IntervalSet:
        pos = np.concatenate([self.starts, self.ends, other.starts, other.ends])
        delta = np.concatenate([np.ones(self.starts.size), -np.ones(self.ends.size),
                                np.ones(other.starts.size), -np.ones(other.ends.size)]).astype(np.int64)
        uniq, inv = np.unique(pos, return_inverse=True)
        cover = np.cumsum(np.bincount(inv.reshape(-1), weights=delta, minlength=uniq.size).astype(np.int64))
        inside = cover >= need
        # segment k is [uniq[k], uniq[k + 1]) with coverage cover[k]
        s, e = uniq[:-1][inside[:-1]], uniq[1:][inside[:-1]]
        return IntervalSet.of(self.lo, self.hi, s, e)

    def union(self, other: IntervalSet) -> IntervalSet:
        return self._sweep(other, 1)

    def intersect(self, other: IntervalSet) -> IntervalSet:
        return self._sweep(other, 2)

    def cover(self, x: np.ndarray) -> np.ndarray:
        """How many members are ``< x`` (vectorized)."""
        cum = np.concatenate([[0], np.cumsum(self.ends - self.starts)])
        i = np.searchsorted(self.starts, x, side="right") - 1
        safe = np.maximum(i, 0)
        part = np.clip(x - self.starts[safe] if self.starts.size else 0, 0,
                       (self.ends - self.starts)[safe] if self.starts.size else 0)
        return np.where(i >= 0, cum[safe] + part, 0)


def _multiples(lo: int, hi: int, r: int, a: int, b: int) -> IntervalSet:
    """Multiples of ``r`` in ``[max(lo, a), min(hi, b))``, one interval each."""
    first, last = -(-max(lo, a) // r), -(-min(hi, b) // r)
    m = np.arange(first, max(first, last), dtype=np.int64) * r
    return IntervalSet.of(lo, hi, m, m + 1)


def interval_count(node: ir.Node, lo: int, hi: int) -> int:
    """An upper bound on the intervals :func:`evaluate` builds for ``node`` over ``[lo, hi)``:
    strides and dilations contribute one per multiple."""
    n = 0
    for sub in node.walk():
        match sub:
            case ir.Strided(s):
                n += (hi - lo) // int(s) + 1
            case ir.Dilated(w, _):
                n += 2 * int(w) + 1
            case _:
                n += 1 if not sub.children() else 0
    return n


def evaluate(node: ir.Node, lo: int, hi: int, nk: int) -> IntervalSet:
    """The members in ``[lo, hi)`` of a concrete pattern of one coordinate: ``rows`` / ``cols``
    and operators over them, ``full``, ``empty``, or a pattern of ``d = p - j`` alone (then the
    members are offsets ``d``; ``strided`` and ``dilated`` give one interval per multiple)."""
    empty = np.zeros(0, dtype=np.int64)
    match node:
        case ir.Causal():
            return IntervalSet.of(lo, hi, np.array([0]), np.array([hi]))
        case ir.Window(left, right):
            return IntervalSet.of(lo, hi, np.array([-int(right)]), np.array([int(left) + 1]))
        case ir.Band(w):
            return IntervalSet.of(lo, hi, np.array([-int(w)]), np.array([int(w) + 1]))
        case ir.Strided(st):
            return _multiples(lo, hi, int(st), lo, hi)
        case ir.Dilated(w, r):
            return _multiples(lo, hi, int(r), -int(w) * int(r), int(w) * int(r) + 1)
        case ir.Full():
            return IntervalSet.of(lo, hi, np.array([lo]), np.array([hi]))
        case ir.Empty():
            return IntervalSet.of(lo, hi, empty, empty)
        case ir.Rows(t) | ir.Cols(t):
            iv = np.array(t.intervals(nk), dtype=np.int64).reshape(-1, 2)
            return IntervalSet.of(lo, hi, iv[:, 0], iv[:, 1])
        case ir.Union(parts) | ir.Intersect(parts):
            sets = [evaluate(c, lo, hi, nk) for c in parts]
            out = sets[0]
            for s in sets[1:]:
                out = out.union(s) if isinstance(node, ir.Union) else out.intersect(s)
            return out
        case ir.Diff(a, b):
            return evaluate(a, lo, hi, nk).intersect(evaluate(b, lo, hi, nk).complement())
        case ir.Complement(a):
            return evaluate(a, lo, hi, nk).complement()
    raise TypeError(f"not a one-coordinate pattern: {node!r}")
