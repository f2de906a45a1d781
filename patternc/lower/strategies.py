"""Execution strategies: how each part of a pattern is meant to run (DESIGN.md, "Kernel strategy").

A plan's ``strategies`` is a tuple of :class:`Branch`, per head group. The branches of a group
are *disjoint* and their union is the group's pattern: a union ``A | B | C`` becomes ``A``,
``B - A``, ``C - (A | B)`` (parts ordered so that cheap, regular shapes come first and the
heavy ``rows`` / ``cols`` last), so kernels can run every branch in its own iteration space and
feed one online softmax without counting a pair twice. Each branch carries

* ``kind``: ``"blocks"`` (plain block-sparse), ``"heavy_rows"`` (a few query blocks see many key
  blocks: global rows, prefixes; split them across programs, merge by log-sum-exp) or
  ``"residue"`` (the branch implies ``d % modulus == 0``: gather rows ``p = c + r*u`` and keys
  ``j = c + r*t`` per residue ``c`` and run ``gathered``, the branch in ``(u, t)`` coordinates, as
  dense tiles);
* its own block lists, compact: only the query blocks with work (``rows``) and, transposed, the
  key blocks with work (``cols``), so a branch of one global row is one row, not a padded matrix;
* ``heavy_rows`` / ``heavy_cols`` (blocks whose count is far above the group's typical row /
  column), a suggested ``split`` factor for them, and ``cost`` (non-empty blocks) for scheduling
  the most expensive work first.

Kernels today use only the whole-pattern tables of the plan; the performance work fills in the
kernels that consume these fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import overload

import numpy as np
import torch

from patternc import ir
from patternc.lower.blocks import Geometry
from patternc.lower.combine import classify_exact, dependence
from patternc.lower.rle import EMPTY, BlockRLE, transpose
from patternc.lower.tables import tables
from patternc.passes import optimize
from patternc.plan import BlockTables

KINDS = ("blocks", "heavy_rows", "residue")


@dataclass(frozen=True, eq=False)
class Branch:
    """One disjoint part of one head group's pattern and the form it runs in (module docstring).

    The block lists are built on first access (``rows``, ``forward``, ``cols``, ``backward``):
    describing a plan's branches costs a classification each, not a second set of tables.
    """

    kind: str
    group: int
    pattern: ir.Node
    states: BlockRLE = field(repr=False)  # exact block states of ``pattern``
    cost: int = 0  # non-empty blocks
    heavy_rows: tuple[int, ...] = ()
    heavy_cols: tuple[int, ...] = ()
    split: int = 1
    modulus: int = 1
    gathered: ir.Node | None = None

    @cached_property
    def _fwd(self) -> tuple[torch.Tensor, BlockTables]:
        return _compact(self.states)

    @cached_property
    def _bwd(self) -> tuple[torch.Tensor, BlockTables]:
        return _compact(transpose(self.states))

    @property
    def rows(self) -> torch.Tensor:
        """int32 ``[m]``: the query blocks with work, ascending."""
        return self._fwd[0]

    @property
    def forward(self) -> BlockTables:
        """``[1, m, ...]`` tables: row ``i`` lists the key blocks of query block ``rows[i]``."""
        return self._fwd[1]

    @property
    def cols(self) -> torch.Tensor:
        """int32 ``[m']``: the key blocks with work, ascending."""
        return self._bwd[0]

    @property
    def backward(self) -> BlockTables:
        """The transpose: row ``i`` lists the query blocks of key block ``cols[i]``."""
        return self._bwd[1]


def modulus(node: ir.Node) -> int:
    """The largest ``r`` for which every pair of a pattern of ``d`` alone has ``d % r == 0``
    (1 when nothing is implied)."""
    match node:
        case ir.Dilated(_, r):
            return int(r)
        case ir.Strided(s):
            return int(s)
        case ir.Intersect(parts):
            return math.lcm(*(modulus(p) for p in parts))
        case ir.Union(parts):
            return math.gcd(*(modulus(p) for p in parts))
        case ir.Diff(a, _):
            return modulus(a)
    return 1


def gathered(node: ir.Node, r: int) -> ir.Node | None:
    """``node`` on residue-gathered coordinates ``u = p // r``, ``t = j // r`` (``d = r (u - t)``),
    or None when some part has no such form."""
    def go(n: ir.Node) -> ir.Node | None:
        match n:
            case ir.Full() | ir.Empty() | ir.Causal():
                return n
            case ir.Window(left, right):
                return ir.Window(int(left) // r, int(right) // r)
            case ir.Band(w):
                return ir.Window(int(w) // r, int(w) // r)
            case ir.Dilated(w, r2) if r % int(r2) == 0:
                return ir.Window(int(w) * int(r2) // r, int(w) * int(r2) // r)
            case ir.Strided(s) if r % int(s) == 0:
                return ir.Full()
            case ir.Union() | ir.Intersect() | ir.Diff() | ir.Complement():
                return ir.map_children_or_none(n, go)
        return None

    return go(node)


def _rank(node: ir.Node) -> int:
    dep = dependence(node)
    if dep <= {"d"}:
        return 1 if modulus(node) > 1 else 0
    if dep <= {"p"}:
        return 3
    if dep <= {"j"}:
        return 4
    if isinstance(node, ir.Global):
        return 3
    return 2


def union_parts(node: ir.Node) -> list[ir.Node]:
    """The parts of a union, after distributing one level of ``&`` / ``-`` over it, cheap and
    regular shapes first."""
    parts: list[ir.Node] = [node]
    if isinstance(node, ir.Union):
        parts = list(node.parts)
    elif isinstance(node, ir.Intersect):
        u = next((p for p in node.parts if isinstance(p, ir.Union)), None)
        if u is not None:
            rest = [p for p in node.parts if p is not u]
            parts = [ir.Intersect((q, *rest)) for q in u.parts]
    elif isinstance(node, ir.Diff) and isinstance(node.a, ir.Union):
        parts = [ir.Diff(q, node.b) for q in node.a.parts]
    expanded: list[ir.Node] = []
    for p in parts:
        expanded += [ir.Rows(p.tokens), ir.Cols(p.tokens)] if isinstance(p, ir.Global) else [p]
    return sorted(expanded, key=_rank)


def _compact(rle: BlockRLE) -> tuple[torch.Tensor, BlockTables]:
    busy = np.unique(rle.row[rle.state != EMPTY])
    sel = np.isin(rle.row, busy)
    sub = BlockRLE(int(busy.size), rle.C, np.searchsorted(busy, rle.row[sel]), rle.start[sel], rle.state[sel])
    return torch.from_numpy(busy.astype(np.int32)), tables([sub])


def _heavy(counts: np.ndarray, typical: float) -> tuple[tuple[int, ...], int]:
    limit = max(16.0, 4.0 * typical)
    heavy = np.flatnonzero(counts > limit)
    split = math.ceil(float(counts.max()) / max(typical, 1.0)) if heavy.size else 1
    return tuple(int(x) for x in heavy), split


def row_counts(rle: BlockRLE) -> np.ndarray:
    """Non-empty blocks per row."""
    ne = rle.state != EMPTY
    return np.bincount(rle.row[ne], weights=(rle.stop - rle.start)[ne], minlength=rle.R).astype(np.int64)


def col_counts(rle: BlockRLE) -> np.ndarray:
    """Non-empty blocks per column (a difference array over the runs, no transpose)."""
    ne = rle.state != EMPTY
    diff = np.bincount(rle.start[ne], minlength=rle.C + 1) - np.bincount(rle.stop[ne], minlength=rle.C + 1)
    return np.cumsum(diff)[:rle.C].astype(np.int64)


def branches(per_group: list[tuple[ir.Node, BlockRLE | None]], g: Geometry) -> tuple[Branch, ...]:
    """The disjoint branches of every head group (module docstring); a group given without its
    block states is classified here."""
    out: list[Branch] = []
    for k, (node, maybe) in enumerate(per_group):
        whole = maybe if maybe is not None else classify_exact(node, g)
        row_typical = _typical(row_counts(whole))
        col_typical = _typical(col_counts(whole))
        parts = union_parts(node)
        seen: ir.Node | None = None
        for part in parts:
            part = optimize(part)
            mine = part if seen is None else optimize(ir.Diff(part, seen))
            seen = part if seen is None else seen | part
            empty = not (g.nqb and g.nkb)
            rle = whole if len(parts) == 1 or empty else classify_exact(mine, g)
            rc = row_counts(rle)
            if rc.sum() == 0:
                continue
            heavy_r, split = _heavy(rc, row_typical)
            heavy_c, _ = _heavy(col_counts(rle), col_typical)
            r = modulus(mine) if dependence(mine) <= {"d"} else 1
            form = gathered(mine, r) if r > 1 else None
            form = None if form is None else optimize(form)
            kind = "residue" if form is not None else ("heavy_rows" if heavy_r else "blocks")
            out.append(Branch(kind, k, mine, rle, int(rc.sum()), heavy_r, heavy_c, split,
                              r if form is not None else 1, form))
    return tuple(out)


class Strategies(Sequence[Branch]):
    """The branches of a plan, computed on first access (a classification per union part: the
    kernels that use only the whole-pattern tables never pay for them)."""

    def __init__(self, per_group: list[tuple[ir.Node, BlockRLE | None]], g: Geometry) -> None:
        self._args: tuple[list[tuple[ir.Node, BlockRLE | None]], Geometry] | None = (per_group, g)
        self._items: tuple[Branch, ...] = ()

    def _get(self) -> tuple[Branch, ...]:
        if self._args is not None:
            per_group, g = self._args
            self._items, self._args = branches(per_group, Geometry(g.nq, g.nk, g.bq, g.bk)), None
        return self._items

    @overload
    def __getitem__(self, i: int) -> Branch: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Branch]: ...
    def __getitem__(self, i: int | slice) -> Branch | Sequence[Branch]:
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return "Strategies(...)" if self._args is not None else f"Strategies({self._items!r})"


def _typical(counts: np.ndarray) -> float:
    """The median number of non-empty blocks over the non-empty rows."""
    counts = counts[counts > 0]
    return float(np.median(counts)) if counts.size else 0.0
