"""The report of SPEC section 4 as a frozen dataclass.

Every figure is exact unless ``Report.bounds`` names it (with the kind of bound and why).
With several heads the top-level figures cover all heads together (``nnz`` and ``flops`` are
sums over heads, the keys-per-row figures run over every (head, query) row) and ``groups`` has
one entry per distinct head pattern with per-head figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from patternc import ir
from patternc.analysis.blocks import offset_block_stats
from patternc.analysis.complexity import complexity
from patternc.analysis.receptive import Receptive, receptive_field
from patternc.analysis.rows import row_counts
from patternc.analysis.tiles import counts_and_blocks


@dataclass(frozen=True)
class GroupReport:
    """Figures for one distinct head pattern, per head."""

    heads: tuple[int, ...]
    pattern: str
    nnz: int
    density: float
    flops: int
    complexity: str
    complexity_tight: bool
    min_keys: int
    mean_keys: float
    max_keys: int
    empty_rows: int
    block_density: float | None
    heaviest_row: int | None


@dataclass(frozen=True)
class Report:
    """SPEC section 4 for one pattern at one length (see the module docstring)."""

    pattern: str
    n: int
    nq: int
    nk: int
    heads: int
    head_dim: int
    block: int
    nnz: int
    density: float
    flops: int
    complexity: str
    complexity_tight: bool
    min_keys: int
    mean_keys: float
    max_keys: int
    empty_rows: int
    block_density: float | None
    heaviest_row: int | None
    receptive_field: int | str | None
    receptive_upper: int | None
    receptive_method: str
    groups: tuple[GroupReport, ...] = ()
    bounds: dict[str, str] = field(default_factory=dict)

    def is_exact(self, figure: str) -> bool:
        return figure not in self.bounds

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (``groups`` as a list of dicts)."""
        d = asdict(self)
        d["groups"] = [asdict(g) for g in self.groups]
        for g in d["groups"]:
            g["heads"] = list(g["heads"])
        return d


def keys_per_row(node: ir.Node, n: int, *, nq: int | None = None, heads: int | None = None) -> np.ndarray:
    """Exact keys per query row, ``[H, nq]`` int64 (``H`` as in :func:`report`): the cheap part of
    the report (e.g. for empty-row warnings), without block density or receptive field."""
    nq = n if nq is None else nq
    _check_lengths(n, nq, 1, 1)
    H = ir.head_counts(node) if heads is None else heads
    done: dict[ir.Node, np.ndarray] = {}
    rows = []
    for g in ir.head_groups(node, H):
        if g not in done:
            done[g] = row_counts(g, nq, n).counts
        rows.append(done[g])
    return np.stack(rows) if rows else np.zeros((0, nq), dtype=np.int64)


def _check_lengths(n: int, nq: int, block: int, head_dim: int) -> None:
    for name, v, lo in (("n", n, 0), ("nq", nq, 0), ("block", block, 1), ("head_dim", head_dim, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ir.PatternError(f"{name} must be an integer >= {lo}, got {v!r}")


def _blocks(node: ir.Node, nq: int, nk: int, block: int) -> tuple[float | None, int | None]:
    """Block density (non-empty blocks over all blocks) and the most key blocks any query block
    visits, for a head-free pattern with residue atoms: from its offsets when it is
    translation-invariant, else from the lowering's exact block states (the figures of
    ``lower(...).stats``, without writing the tables)."""
    fast = offset_block_stats(ir.concretize(node, nk), nq, nk, block)
    if fast is not None:
        return fast
    try:
        from patternc.lower import Geometry, group_states
        from patternc.lower.rle import EMPTY
    except ImportError:  # lowering is another stage; the report stays useful without it
        return None, None
    per_group = group_states(node, Geometry(nq, nk, block, block))
    nqb, nkb = -(-nq // block), -(-nk // block)
    if not per_group or nqb * nkb == 0:
        return 0.0, 0
    visited, heaviest = 0, 0
    for _, rle in per_group:
        keep = rle.state != EMPTY
        per_row = np.bincount(rle.row[keep], weights=(rle.stop - rle.start)[keep], minlength=nqb)
        visited += int(per_row.sum())
        heaviest = max(heaviest, int(per_row.max(initial=0)))
    return visited / (len(per_group) * nqb * nkb), heaviest


def _group(node: ir.Node, heads: tuple[int, ...], counts: np.ndarray, blocks: tuple[float, int] | None,
           nq: int, nk: int, block: int, head_dim: int) -> GroupReport:
    nnz = int(counts.sum())
    c = complexity(node)
    bd, heavy = blocks if blocks is not None else _blocks(node, nq, nk, block)
    return GroupReport(
        heads=heads, pattern=node.sap(), nnz=nnz, density=nnz / (nq * nk) if nq * nk else 0.0,
        flops=4 * nnz * head_dim, complexity=str(c), complexity_tight=c.tight,
        min_keys=int(counts.min()) if counts.size else 0,
        mean_keys=float(counts.mean()) if counts.size else 0.0,
        max_keys=int(counts.max(initial=0)), empty_rows=int((counts == 0).sum()),
        block_density=bd, heaviest_row=heavy)


def report(node: ir.Node, n: int, *, nq: int | None = None, block: int = 128, heads: int | None = None,
           head_dim: int = 64) -> Report:
    """The report of ``node`` with ``nk = n`` keys and ``nq`` (default ``n``) queries.

    ``heads`` defaults to the number of distinct head groups of a ``heads(...)`` pattern (1
    otherwise). Raises :class:`ir.PatternError` for bad lengths or arguments.
    """
    nq = n if nq is None else nq
    _check_lengths(n, nq, block, head_dim)
    H = ir.head_counts(node) if heads is None else heads
    per_head = ir.head_groups(node, H)
    members: dict[ir.Node, list[int]] = {}
    for h, g in enumerate(per_head):
        members.setdefault(g, []).append(h)
    bounds: dict[str, str] = {}
    groups, all_counts = [], []
    for g, hs in members.items():
        rc, blocks = counts_and_blocks(g, nq, n, block)
        if not rc.exact:
            bounds["nnz"] = "upper bound: a residue formula with a long period was bounded by segment lengths"
        groups.append(_group(g, tuple(hs), rc.counts, blocks, nq, n, block, head_dim))
        all_counts.append((rc.counts, len(hs)))
    return _assemble(node, n, nq, H, block, head_dim, groups, all_counts, members, bounds)


def _assemble(node: ir.Node, n: int, nq: int, H: int, block: int, head_dim: int, groups: list[GroupReport],
              all_counts: list[tuple[np.ndarray, int]], members: dict[ir.Node, list[int]],
              bounds: dict[str, str]) -> Report:
    nnz = sum(gr.nnz * len(gr.heads) for gr in groups)
    rows = H * nq
    c = complexity(node)
    if not c.tight:
        bounds["complexity"] = "upper bound (O): the structure does not prove a matching lower bound"
    if "nnz" in bounds:
        for f in ("density", "flops", "mean_keys", "max_keys", "min_keys"):
            bounds[f] = "upper bound (from nnz)"
        bounds["empty_rows"] = "lower bound (from nnz)"
    bd, heavy = _combine_blocks(groups, H)
    if bd is None:
        bounds["block_density"] = "unavailable: patternc.lower is not installed"
    rf = _receptive(list(members), n, block)
    if not rf.exact:
        kind = "unknown" if rf.layers is None else "lower bound"
        upper = f", at most {rf.upper}" if rf.upper is not None else ""
        bounds["receptive_field"] = f"{kind}{upper}: {rf.method}"
    return Report(
        pattern=node.sap(), n=n, nq=nq, nk=n, heads=H, head_dim=head_dim, block=block,
        nnz=nnz, density=nnz / (rows * n) if rows * n else 0.0, flops=4 * nnz * head_dim,
        complexity=str(c), complexity_tight=c.tight,
        min_keys=min((int(cn.min()) for cn, _ in all_counts if cn.size), default=0),
        mean_keys=nnz / rows if rows else 0.0,
        max_keys=max((int(cn.max()) for cn, _ in all_counts if cn.size), default=0),
        empty_rows=sum(int((cn == 0).sum()) * k for cn, k in all_counts),
        block_density=bd, heaviest_row=heavy,
        receptive_field=rf.to_json(), receptive_upper=rf.layers if rf.exact else rf.upper,
        receptive_method=rf.method,
        groups=tuple(groups), bounds=bounds)


def _combine_blocks(groups: list[GroupReport], H: int) -> tuple[float | None, int | None]:
    # every head counts once: the mean over heads of each head's block density
    density, heaviest = 0.0, 0
    for g in groups:
        if g.block_density is None or g.heaviest_row is None:
            return None, None
        density += g.block_density * len(g.heads) / H
        heaviest = max(heaviest, g.heaviest_row)
    return density, heaviest


def _receptive(patterns: list[ir.Node], n: int, block: int) -> Receptive:
    # one layer of a multi-head pattern mixes every head: its graph is the union of the heads
    node = patterns[0]
    for p in patterns[1:]:
        node = node | p
    return receptive_field(node, n, block=block)
