"""A pattern's predicate as array arithmetic, shared by numpy tiles and torch ``mask_mod``s.

:func:`predicate` evaluates a concrete, head-free pattern on broadcastable integer arrays of
query positions ``p`` and key indices ``j`` using only Python operators (``%`` and ``//`` are
floor operations in numpy and torch alike), so the same code classifies a block tile in the
lowering and builds FlexAttention's ``mask_mod``. Random primitives read their keys from an
:class:`Env`, which draws them from :mod:`patternc.rng` (numpy) or looks them up in tables
(torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from patternc import ir
from patternc.rng import random_key_blocks, random_keys

Array = Any  # numpy or torch integer / boolean array


class Env(Protocol):
    def keys(self, node: ir.Random, p: Array) -> list[Array]:
        """The ``min(r, nk)`` keys of each position ``p``, one array per draw, shaped like ``p``."""

    def key_blocks(self, node: ir.RandomBlocks, p: Array) -> list[Array]:
        """The chosen key blocks of each position's query block, one array per draw."""


class NumpyEnv:
    """Draws random keys straight from the generator (for tiles of the lowering)."""

    def __init__(self, nk: int, drawn: dict[object, Any] | None = None) -> None:
        self.nk = nk
        # rows already drawn for this geometry (``Drawn`` by node, from the classification)
        self.drawn = drawn if drawn is not None else {}

    def keys(self, node: ir.Random, p: Array) -> list[Array]:
        return _per_row(np.asarray(p), lambda rows: random_keys(int(node.r), int(node.seed), rows, self.nk),
                        self.drawn.get(node))

    def key_blocks(self, node: ir.RandomBlocks, p: Array) -> list[Array]:
        r, b, seed = int(node.r), int(node.b), int(node.seed)
        return _per_row(np.asarray(p) // b, lambda rows: random_key_blocks(r, b, seed, rows, self.nk),
                        self.drawn.get(node))


@dataclass(frozen=True)
class Drawn:
    """A generator's draws for the consecutive rows ``first, first + 1, ...``: ``cols[t]`` holds
    draw ``t`` of each row."""

    first: int
    cols: np.ndarray  # [draws, rows]

    @staticmethod
    def of(rows: np.ndarray, table: np.ndarray) -> Drawn | None:
        """From the draws ``table`` ``[len(rows), draws]`` of sorted distinct ``rows``, if consecutive."""
        if rows.size == 0 or int(rows[-1]) - int(rows[0]) + 1 != rows.size:
            return None
        return Drawn(int(rows[0]), np.ascontiguousarray(table.T))


def _per_row(rows: np.ndarray, draw: Callable[[np.ndarray], np.ndarray],
             drawn: Drawn | None = None) -> list[Array]:
    """``draw`` (a pure function of each row) at every entry of ``rows``, one array per column of
    its result: looked up in ``drawn`` when it holds every row, else drawn once per distinct row.
    The distinct rows of a few tiles span a short range: marking them in it is linear, sorting
    the entries (``np.unique``) is not."""
    flat = rows.reshape(-1)
    if flat.size == 0:
        return [np.zeros(rows.shape, dtype=np.int64) for _ in range(draw(flat).shape[1])]
    lo, hi = int(flat.min()), int(flat.max())
    if drawn is not None and drawn.first <= lo and hi < drawn.first + drawn.cols.shape[1]:
        at = rows - drawn.first
        return [col[at] for col in drawn.cols]
    if hi - lo < 4 * flat.size:
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[flat - lo] = True
        rank = np.cumsum(present) - 1  # each row's place among the distinct rows
        uniq, inv = lo + np.flatnonzero(present), rank[flat - lo]
    else:
        uniq, inv = np.unique(flat, return_inverse=True)
    # one 1-D take per column: a take of rows of the 2-D table costs several times as much
    return [col[inv].reshape(rows.shape) for col in np.ascontiguousarray(draw(uniq).T)]


def _in(x: Array, tokens: ir.TokenList, nk: int, d: Array) -> Array:
    out = d != d  # all False, broadcast like d
    for a, b in tokens.intervals(nk):
        out = out | ((x >= a) & (x < b))
    return out


def _any_equal(values: list[Array], x: Array, d: Array) -> Array:
    out = d != d
    for v in values:
        out = out | (v == x)
    return out


def predicate(node: ir.Node, p: Array, j: Array, nk: int, env: Env) -> Array:
    """Boolean array: ``(p, j)`` in the concrete, head-free pattern ``node``."""
    return _predicate(node, p, j, p - j, nk, env)


def _predicate(node: ir.Node, p: Array, j: Array, d: Array, nk: int, env: Env) -> Array:
    """:func:`predicate` with ``d = p - j`` computed once for the whole tree."""

    def v(x: ir.Int) -> int:
        return ir.eval_int(x, nk)

    match node:
        case ir.Full():
            return d == d
        case ir.Empty():
            return d != d
        case ir.Causal():
            return d >= 0
        case ir.Window(left, right):
            return (d >= -v(right)) & (d <= v(left))
        case ir.Band(w):
            return (d >= -v(w)) & (d <= v(w))
        case ir.Dilated(w, r):
            return (d >= -v(w) * v(r)) & (d <= v(w) * v(r)) & (d % v(r) == 0)
        case ir.Strided(s):
            return d % v(s) == 0
        case ir.Blocks(b):
            return p // v(b) == j // v(b)
        case ir.Fixed(l, c):
            return (p // v(l) == j // v(l)) | (j % v(l) >= v(l) - v(c))
        case ir.Rows(t):
            return _in(p, t, nk, d)
        case ir.Cols(t):
            return _in(j, t, nk, d)
        case ir.Global(t):
            return _in(p, t, nk, d) | _in(j, t, nk, d)
        case ir.Prefix(m):
            return (p < v(m)) & (j < v(m))
        case ir.Steps(lq, lk, shift):
            return j // v(lk) < (p + v(shift)) // v(lq)
        case ir.Random():
            return _any_equal(env.keys(node, p), j, d)
        case ir.RandomBlocks(_, b, _):
            return _any_equal(env.key_blocks(node, p), j // v(b), d)
        case ir.Union(parts):
            out = _predicate(parts[0], p, j, d, nk, env)
            for child in parts[1:]:
                out = out | _predicate(child, p, j, d, nk, env)
            return out
        case ir.Intersect(parts):
            out = _predicate(parts[0], p, j, d, nk, env)
            for child in parts[1:]:
                out = out & _predicate(child, p, j, d, nk, env)
            return out
        case ir.Diff(a, b):
            return _predicate(a, p, j, d, nk, env) & ~_predicate(b, p, j, d, nk, env)
        case ir.Complement(a):
            return ~_predicate(a, p, j, d, nk, env)
        case ir.Heads():
            raise ir.PatternError("a heads(...) pattern needs the number of heads")
    raise TypeError(f"unknown pattern node {node!r}")
