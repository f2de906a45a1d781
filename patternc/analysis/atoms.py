"""Atoms of a pattern's rows: the pattern as a boolean formula over simple row structures.

* interval atoms (``Iv``): for query position ``p`` a few sorted, disjoint key intervals
  (band, window, causal, blocks, prefix, rows, cols, random keys, random key blocks);
* residue atoms: ``(p - j) % m == 0`` (``DMod``: strided, the stride of dilated) and
  ``j % m >= lo`` (``JMod``: the summary columns of fixed).

``dilated`` is its span and a stride, ``fixed`` its block or its summary columns, ``global`` is
``rows | cols``. See ``rows`` for how rows of atoms are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from patternc import ir
from patternc.rng import random_key_blocks, random_keys


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
