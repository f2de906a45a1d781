"""Residue-class execution: which parts of a pattern run gathered, and the rest as plain blocks.

A disjoint branch of a pattern that implies ``d % r == 0`` (``strided(128) & causal - window``,
``dilated(w, r)``) touches every block partially, so a block kernel computes the whole block to
keep ``1/r`` of it. Queries and keys of one residue class ``c`` (position ``p = c + r*u``, key
``j = c + r*t``) see the branch as a pattern of ``u - t`` alone, dense: the branch's
``gathered`` form (``patternc.lower.strategies``). The kernels run it on strided pointer
arithmetic, no copies: grid axis 2 is the class.

Geometry: all classes share one *virtual* problem of ``nq_v = U1 - u0`` rows and ``nk_v = U1``
keys with ``u0 = floor((nk - nq) / r)`` and ``U1 = ceil(nk / r)``; its row ``a`` is position
``u = a + u0`` (so the usual end alignment ``a + nk_v - nq_v`` is ``u``), physical row
``c + r*u - (nk - nq)`` when that lies in ``[0, nq)``, and its key ``t`` physical key ``c + r*t``
when below ``nk``. Every physical pair lies in exactly one class, and every row in the virtual
grid of its class.

Execution: the plain kernels run the rest of the pattern (the union of the other branches) and
store ``(out, lse)`` / ``(dQ, dK, dV)``; each residue launch then merges its rows into them
(forward: log-sum-exp of the stored and the new partial result, in the kernel's epilogue;
backward: adds its gradients, computed with the final LSE and delta).

Choice (``mode``): ``"auto"`` gathers when the blocks visited drop to at most ``GAIN`` of the
plain plan's and the saving pays for the extra launches (``MIN_GAIN_TILES``); ``"force"``
whenever some branch has a gathered form (tests); ``"off"`` never.
``PATTERNC_RESIDUE`` sets the default mode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from patternc import ir
from patternc.lower import lower
from patternc.lower.combine import dependence
from patternc.lower.strategies import gathered, modulus, union_parts
from patternc.passes import optimize
from patternc.runtime.cache import env_choice

MODES = ("auto", "force", "off")
GAIN = 0.75  # "auto" gathers when (rest + gathered blocks) <= GAIN * plain blocks
MIN_GAIN_TILES = 16384
"""... and when that saves at least this many tiles (blocks x heads) per extra launch (one per
modulus, less one where no plain blocks are left to launch): a launch
costs tens of microseconds of host time, about what 16k 64x64 tiles take on an H100, so short
sequences (4k tokens) run plain."""


def default_mode() -> str:
    """``$PATTERNC_RESIDUE`` (``auto`` / ``force`` / ``off``), ``auto`` when unset."""
    return env_choice("PATTERNC_RESIDUE", MODES)


@dataclass(frozen=True)
class Gathered:
    """The residue branches of modulus ``r`` (over all head groups) and their virtual problem.

    ``node``: the branches in gathered coordinates (``heads(...)`` with ``empty`` for head groups
    without such a branch when the pattern has several groups); ``nq`` / ``nk``: the virtual
    lengths; ``u0``, ``off = nk - nq`` (physical): the row mapping (module docstring).
    """

    r: int
    node: ir.Node
    nq: int
    nk: int
    u0: int
    off: int


@dataclass(frozen=True)
class Decomposition:
    """``rest`` (plain blocks, run first) and the gathered parts (merged into it)."""

    rest: ir.Node
    parts: tuple[Gathered, ...]


def whole_classes(nq: int, nk: int, r: int) -> tuple[bool, bool]:
    """Whether every gathered (row, key) of the virtual grid is a physical one: keys when ``r``
    divides ``nk`` (every class then has ``nk / r`` keys), rows when it divides ``nq`` too (``off``
    is then a multiple of ``r``, and every class has ``nq / r`` rows from ``u0``). The kernels then
    skip those bound tests where the virtual lengths are whole blocks (``EVEN_*``): H100, 64k, D=64,
    forward ms with / without the key tests (``benchmarks/dev/residue_grid_ab.py``)
    ``dilated_sliding_window`` 0.561 -> 0.512, ``longformer_dilated`` 0.843 -> 0.805,
    ``strided(256) & causal`` 0.260 -> 0.252.

        >>> whole_classes(65536, 65536, 256), whole_classes(1000, 1001, 2), whole_classes(999, 1000, 2)
        ((True, True), (False, False), (False, True))
    """
    keys = nk % r == 0
    return keys and nq % r == 0, keys


def _union(parts: list[ir.Node]) -> ir.Node:
    if not parts:
        return ir.Empty()
    return parts[0] if len(parts) == 1 else ir.Union(tuple(parts))


def split_group(node: ir.Node) -> tuple[list[ir.Node], dict[int, list[ir.Node]]]:
    """One head-free concrete pattern as disjoint branches: the plain ones and, per modulus, the
    gathered forms of the residue ones (the branches of ``patternc.lower.strategies``)."""
    plain: list[ir.Node] = []
    res: dict[int, list[ir.Node]] = {}
    seen: ir.Node | None = None
    for part in union_parts(optimize(node)):
        part = optimize(part)
        mine = part if seen is None else optimize(ir.Diff(part, seen))
        seen = part if seen is None else ir.Union((seen, part))
        r = modulus(mine) if dependence(mine) <= {"d"} else 1
        form = gathered(mine, r) if r > 1 else None
        if form is None:
            plain.append(mine)
        else:
            res.setdefault(r, []).append(optimize(form))
    return plain, res


def _blocks(node: ir.Node, nq: int, nk: int, bq: int, bk: int, heads: int) -> int:
    plan = lower(node, nq, nk, block_q=bq, block_k=bk, heads=heads)
    return int(plan.forward.num.sum()) + int(plan.forward.full_num.sum())


@functools.lru_cache(maxsize=128)
def decompose(node: ir.Node, nq: int, nk: int, heads: int, block_q: int, block_k: int,
              mode: str) -> Decomposition | None:
    """How to run ``node`` (concrete, checked) at these lengths, or None for plain blocks only.

    ``block_q`` / ``block_k``: the plain kernel's blocks, used for the cost comparison of
    ``mode="auto"`` (the gathered parts are costed at the same blocks).
    """
    if mode == "off" or nq == 0 or nk == 0:
        return None
    G = ir.head_counts(node)
    groups = [split_group(ir.select_head(node, g, G)) for g in range(G)]
    moduli = sorted({r for _, res in groups for r in res})
    if not moduli:
        return None
    rests = [_union(plain) for plain, _ in groups]
    rest = rests[0] if G == 1 else ir.Heads(tuple(rests))
    off = nk - nq
    parts = []
    for r in moduli:
        forms = [_union(res.get(r, [])) for _, res in groups]
        u0, u1 = off // r, -(-nk // r)
        parts.append(Gathered(r, forms[0] if G == 1 else ir.Heads(tuple(forms)), u1 - u0, u1, u0, off))
    if mode == "auto":
        plain = _blocks(node, nq, nk, block_q, block_k, heads)
        rest_blocks = _blocks(rest, nq, nk, block_q, block_k, heads)
        mixed = rest_blocks + sum(p.r * _blocks(p.node, p.nq, p.nk, block_q, block_k, heads) for p in parts)
        extra = len(parts) - (rest_blocks == 0)  # a rest without blocks is not launched
        per_head = heads // G
        if mixed > GAIN * plain or (plain - mixed) * per_head < MIN_GAIN_TILES * extra:
            return None
    return Decomposition(rest, tuple(parts))
