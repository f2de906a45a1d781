"""The Plan: what a block-sparse kernel needs to know about a pattern at given lengths.

``patternc.lower.lower(pattern, nq, nk, block_q, block_k, heads)`` builds it analytically;
kernels consume it. The tables use FlexAttention's BCSR layout (``kv_num_blocks`` /
``kv_indices`` / ``full_kv_num_blocks`` / ``full_kv_indices``), with a leading *head group*
axis: ``G = ir.head_counts(pattern)`` distinct head patterns (1 unless the pattern uses
``heads(...)``), and head ``h`` of ``H`` uses group ``h * G // H``.

Block ``(qb, kb)`` covers queries ``[qb*block_q, min((qb+1)*block_q, nq))`` and keys
``[kb*block_k, min((kb+1)*block_k, nk))``. A block is
  * EMPTY   - no pair of the pattern inside; listed nowhere, never visited;
  * FULL    - every in-range pair is in the pattern; the kernel skips the predicate;
  * PARTIAL - mixed; the kernel evaluates the pattern's predicate.

Index rows are sorted ascending and padded with 0 past their count.

The lists are *stored* as arithmetic runs (:class:`Runs`: a causal row is one run, a strided
row one run with a step), which costs the pattern's structure, not its block count: a causal
mask over a million tokens is 16,383 runs where its index lists are 33 million entries. The
padded index tensors (``idx`` / ``full_idx``) are expanded from the runs on first access, on
the device the runs live on (one vectorized scatter; move the plan with ``.to(device)`` first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch


@dataclass(frozen=True, eq=False)
class Runs:
    """Block indices as arithmetic runs, all 1-D int64 tensors of one length: row
    ``(g[i], row[i])`` holds ``start[i] + step[i] * t`` at positions ``pos[i] + t`` for
    ``t < count[i]``. Runs of one row cover positions ``0 .. num - 1`` without overlap.
    Build them with :meth:`of` (which counts ``total`` and ``width`` on the host).
    ``sort_rows``: the runs give each row's blocks in another order (a row listed residue class
    by residue class); :meth:`expand` sorts the rows ascending."""

    g: torch.Tensor
    row: torch.Tensor
    pos: torch.Tensor
    start: torch.Tensor
    count: torch.Tensor
    step: torch.Tensor
    total: int  # entries in all (``count.sum()``), known on the host: expansion needs no sync
    width: int  # entries in the longest row (``num.max()``)
    sort_rows: bool = False
    base: torch.Tensor | None = None  # flat place of each run's first entry (``flat_base``), if moved

    @staticmethod
    def of(cols: Sequence[torch.Tensor], sort_rows: bool = False) -> Runs:
        """Runs from host tensors ``(g, row, pos, start, count, step)``."""
        g, row, pos, start, count, step = cols
        total = int(count.sum()) if count.numel() else 0
        width = int((pos + count).max()) if count.numel() else 0
        return Runs(g, row, pos, start, count, step, total, width, sort_rows)

    def with_tensors(self, cols: Sequence[torch.Tensor], base: torch.Tensor | None = None) -> Runs:
        """The same runs as ``(g, row, pos, start, count, step)`` tensors (on another device), with
        their flat bases if given."""
        g, row, pos, start, count, step = cols
        return Runs(g, row, pos, start, count, step, self.total, self.width, self.sort_rows, base)

    def flat_base(self, rows: int) -> torch.Tensor:
        """Each run's first entry's place in the flattened ``[G, rows, width]`` index tensor."""
        if self.base is not None:
            return self.base
        if self.g.device.type == "cpu":  # numpy: torch's CPU kernels go multi-threaded and stall
            g, row, pos = (t.numpy() for t in (self.g, self.row, self.pos))
            return torch.from_numpy((g * rows + row) * self.width + pos)
        return (self.g * rows + self.row) * self.width + self.pos

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.g, self.row, self.pos, self.start, self.count, self.step

    def expand(self, num: torch.Tensor) -> torch.Tensor:
        """The padded ``[G, R, width]`` int32 index tensor (zeros past each row's ``num``)."""
        return expand_all([(self, num)])[0]

    @staticmethod
    def from_lists(num: torch.Tensor, idx: torch.Tensor) -> Runs:
        """One run of length 1 per listed entry of padded ``[G, R, width]`` lists."""
        ok = torch.arange(idx.shape[2], device=idx.device)[None, None, :] < num[:, :, None]
        g, r, p = ok.nonzero(as_tuple=True)
        one = torch.ones_like(g)
        return Runs.of([g, r, p, idx[g, r, p].long(), one, one])


ALIGN = 32  # entries: each expanded table starts 128 bytes into the shared buffer


def expand_all(items: Sequence[tuple[Runs, torch.Tensor]]) -> list[torch.Tensor]:
    """``[runs.expand(num) for runs, num in items]`` with one set of tensor operations for all of
    them (on a GPU each is a launch, ~10-40 us of host time: four tables expanded one by one were
    ~60 of them), into one buffer: the results are views of it."""
    shapes = [(int(num.shape[0]), int(num.shape[1]), runs.width) for runs, num in items]
    sizes = [-(-G * R * W // ALIGN) * ALIGN for G, R, W in shapes]  # aligned starts: kernels'
    begins = [sum(sizes[:i]) for i in range(len(items))]  # pointers keep Triton's 16-byte class
    dev = items[0][0].g.device
    flat = torch.zeros(sum(sizes), dtype=torch.int32, device=dev)
    live = [i for i, (runs, _) in enumerate(items) if runs.total]
    if live:
        def cat(ts: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(ts) if len(ts) > 1 else ts[0]

        live_runs = [items[i][0] for i in live]
        flat_bases = [r.flat_base(shapes[i][1]) for r, i in zip(live_runs, live)]
        base = cat([b + begins[i] if begins[i] else b for b, i in zip(flat_bases, live)])
        start, count, step = (cat([getattr(r, f) for r in live_runs]) for f in ("start", "count", "step"))
        total = sum(r.total for r in live_runs)
        first = torch.cumsum(count, 0) - count
        run = torch.repeat_interleave(torch.arange(count.numel(), device=dev), count, output_size=total)
        t = torch.arange(total, device=dev) - first[run]
        flat[base[run] + t] = (start[run] + step[run] * t).to(torch.int32)
    out = []
    for (runs, num), (G, R, W), begin in zip(items, shapes, begins):
        idx = flat[begin:begin + G * R * W].view(G, R, W)
        if runs.sort_rows and runs.total:  # rows listed residue class by residue class: sort them
            pad = torch.arange(W, device=dev)[None, None, :] >= num.to(dev)[:, :, None]
            idx = idx.masked_fill(pad, torch.iinfo(torch.int32).max).sort(dim=2).values.masked_fill(pad, 0)
        out.append(idx)
    return out


def on_device(t: torch.Tensor, device: torch.device | str) -> bool:
    """``t`` lives on ``device`` (``"cuda"`` matches the current CUDA device)."""
    d = torch.device(device)
    if d.type != t.device.type:
        return False
    if d.type == "cuda" and d.index is None:
        return t.device.index == torch.cuda.current_device()
    return d.index is None or d.index == t.device.index


@dataclass(frozen=True, eq=False)
class BlockTables:
    """One direction of the block lists.

    ``num[g, r]`` PARTIAL blocks (int32 ``[G, rows]``) whose indices ``idx[g, r, :num[g, r]]``
    come from ``runs``; ``full_num`` / ``full_idx`` / ``full_runs`` the same for FULL blocks.
    Forward rows are query blocks listing key blocks; the transposed tables (backward dK/dV) have
    key-block rows listing query blocks.

        >>> t = BlockTables.from_lists(torch.tensor([[1, 2]]), torch.tensor([[[3, 0], [0, 1]]]),
        ...                            torch.tensor([[0, 0]]), torch.zeros(1, 2, 0, dtype=torch.int32))
        >>> t.idx.tolist(), int(t.runs.count.sum())
        ([[[3, 0], [0, 1]]], 3)
    """

    num: torch.Tensor
    runs: Runs
    full_num: torch.Tensor
    full_runs: Runs

    @staticmethod
    def from_lists(num: torch.Tensor, idx: torch.Tensor, full_num: torch.Tensor,
                   full_idx: torch.Tensor) -> BlockTables:
        """Tables given as padded index lists (tests, hand-written tables)."""
        return BlockTables(num.int(), Runs.from_lists(num, idx), full_num.int(),
                           Runs.from_lists(full_num, full_idx))

    @cached_property
    def _expanded(self) -> tuple[torch.Tensor, torch.Tensor]:
        # PARTIAL and FULL in one expansion: the kernels read both
        idx, full_idx = expand_all([(self.runs, self.num), (self.full_runs, self.full_num)])
        return idx, full_idx

    @property
    def idx(self) -> torch.Tensor:
        """PARTIAL block indices, int32 ``[G, rows, max num]``, expanded from ``runs`` on their device."""
        return self._expanded[0]

    @property
    def full_idx(self) -> torch.Tensor:
        """FULL block indices, int32 ``[G, rows, max full_num]``."""
        return self._expanded[1]

    def tensors(self) -> list[torch.Tensor]:
        """The tables' tensors, then the runs' flat bases (computed here, on the host, and moved
        with the rest: the device is spared that arithmetic)."""
        rows = int(self.num.shape[1])
        return [self.num, *self.runs.tensors(), self.full_num, *self.full_runs.tensors(),
                self.runs.flat_base(rows), self.full_runs.flat_base(rows)]

    def with_tensors(self, ts: Sequence[torch.Tensor]) -> BlockTables:
        """The same tables from :meth:`tensors`' list (on another device)."""
        return BlockTables(ts[0], self.runs.with_tensors(ts[1:7], ts[14]), ts[7],
                           self.full_runs.with_tensors(ts[8:14], ts[15]))

    def to(self, device: torch.device | str) -> BlockTables:
        """These tables on ``device``: ``self`` if they are there already (keeping the expanded
        index tensors), else a copy of the runs (expanded there on first access)."""
        if on_device(self.num, device):
            return self
        return self.with_tensors(move(self.tensors(), device))


def move(tensors: Sequence[torch.Tensor], device: torch.device | str) -> list[torch.Tensor]:
    """Integer tensors on ``device`` in one host-to-device copy (many small copies cost more)."""
    flat = torch.cat([t.reshape(-1).long() for t in tensors]).to(device)
    parts = flat.split([t.numel() for t in tensors])  # views: no device work
    return [p.view(t.shape) if t.dtype == torch.int64 else p.view(t.shape).to(t.dtype)
            for p, t in zip(parts, tensors)]


@dataclass(frozen=True)
class Plan:
    """A pattern lowered at ``(nq, nk, block_q, block_k)``.

    ``forward``: rows are query blocks (``ceil(nq / block_q)``), entries key blocks.
    ``backward``: the exact transpose, rows are key blocks, entries query blocks.
    ``groups``: head-group count ``G``; ``heads`` the head count it was built for (or None).
    ``strategies``: how each part executes (heavy rows, residue classes, disjoint union branches);
    filled by the lowering and consumed by the kernels (see patternc.lower for the kinds).
    ``stats``: block density, heaviest row / column, ... for reports.
    """

    nq: int
    nk: int
    block_q: int
    block_k: int
    groups: int
    forward: BlockTables
    backward: BlockTables
    strategies: Sequence[Any] = ()  # patternc.lower builds its branches lazily, on first access
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def num_q_blocks(self) -> int:
        return -(-self.nq // self.block_q)

    @property
    def num_k_blocks(self) -> int:
        return -(-self.nk // self.block_k)

    def expanded(self) -> Plan:
        """``self`` with both directions' index tensors expanded now (on the plan's device), not
        on the kernels' first access."""
        todo = [t for t in (self.forward, self.backward) if "_expanded" not in t.__dict__]
        if todo:  # all four tables in one expansion (each op is a launch on a GPU)
            got = expand_all([pair for t in todo for pair in ((t.runs, t.num), (t.full_runs, t.full_num))])
            for i, t in enumerate(todo):
                t.__dict__["_expanded"] = (got[2 * i], got[2 * i + 1])  # the cached_property's slot
        return self

    def to(self, device: torch.device | str) -> Plan:
        if on_device(self.forward.num, device) and on_device(self.backward.num, device):
            return self
        ts = move(self.forward.tensors() + self.backward.tensors(), device)
        return Plan(self.nq, self.nk, self.block_q, self.block_k, self.groups,
                    self.forward.with_tensors(ts[:16]), self.backward.with_tensors(ts[16:]), self.strategies,
                    self.stats)
