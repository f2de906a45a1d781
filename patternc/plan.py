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

    @staticmethod
    def of(cols: Sequence[torch.Tensor], sort_rows: bool = False) -> Runs:
        """Runs from host tensors ``(g, row, pos, start, count, step)``."""
        g, row, pos, start, count, step = cols
        total = int(count.sum()) if count.numel() else 0
        width = int((pos + count).max()) if count.numel() else 0
        return Runs(g, row, pos, start, count, step, total, width, sort_rows)

    def with_tensors(self, cols: Sequence[torch.Tensor]) -> Runs:
        """The same runs as ``(g, row, pos, start, count, step)`` tensors (on another device)."""
        g, row, pos, start, count, step = cols
        return Runs(g, row, pos, start, count, step, self.total, self.width, self.sort_rows)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.g, self.row, self.pos, self.start, self.count, self.step

    def expand(self, num: torch.Tensor) -> torch.Tensor:
        """The padded ``[G, R, width]`` int32 index tensor (zeros past each row's ``num``)."""
        G, R = num.shape
        width, total = self.width, self.total
        dev = self.g.device
        out = torch.zeros(G * R * width, dtype=torch.int32, device=dev)
        if total == 0:
            return out.view(G, R, width)
        first = torch.cumsum(self.count, 0) - self.count
        run = torch.repeat_interleave(torch.arange(self.count.numel(), device=dev), self.count,
                                      output_size=total)
        t = torch.arange(total, device=dev) - first[run]
        base = (self.g * R + self.row) * width + self.pos
        out[base[run] + t] = (self.start[run] + self.step[run] * t).to(torch.int32)
        out = out.view(G, R, width)
        if self.sort_rows:
            pad = torch.arange(width, device=dev)[None, None, :] >= num.to(dev)[:, :, None]
            out = out.masked_fill(pad, torch.iinfo(torch.int32).max).sort(dim=2).values.masked_fill(pad, 0)
        return out

    @staticmethod
    def from_lists(num: torch.Tensor, idx: torch.Tensor) -> Runs:
        """One run of length 1 per listed entry of padded ``[G, R, width]`` lists."""
        ok = torch.arange(idx.shape[2], device=idx.device)[None, None, :] < num[:, :, None]
        g, r, p = ok.nonzero(as_tuple=True)
        one = torch.ones_like(g)
        return Runs.of([g, r, p, idx[g, r, p].long(), one, one])


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
    def idx(self) -> torch.Tensor:
        """PARTIAL block indices, int32 ``[G, rows, max num]``, expanded from ``runs`` on their device."""
        return self.runs.expand(self.num)

    @cached_property
    def full_idx(self) -> torch.Tensor:
        """FULL block indices, int32 ``[G, rows, max full_num]``."""
        return self.full_runs.expand(self.full_num)

    def tensors(self) -> list[torch.Tensor]:
        return [self.num, *self.runs.tensors(), self.full_num, *self.full_runs.tensors()]

    def with_tensors(self, ts: Sequence[torch.Tensor]) -> BlockTables:
        """The same tables from :meth:`tensors`' list (on another device)."""
        return BlockTables(ts[0], self.runs.with_tensors(ts[1:7]), ts[7],
                           self.full_runs.with_tensors(ts[8:14]))

    def to(self, device: torch.device | str) -> BlockTables:
        """These tables on ``device``: ``self`` if they are there already (keeping the expanded
        index tensors), else a copy of the runs (expanded there on first access)."""
        if on_device(self.num, device):
            return self
        return self.with_tensors(move(self.tensors(), device))


def move(tensors: Sequence[torch.Tensor], device: torch.device | str) -> list[torch.Tensor]:
    """Integer tensors on ``device`` in one host-to-device copy (many small copies cost more)."""
    flat = torch.cat([t.reshape(-1).long() for t in tensors]).to(device)
    out, at = [], 0
    for t in tensors:
        out.append(flat[at:at + t.numel()].view(t.shape).to(t.dtype))
        at += t.numel()
    return out


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
        for t in (self.forward, self.backward):
            t.idx, t.full_idx  # noqa: B018 - cached properties, computed on first access
        return self

    def to(self, device: torch.device | str) -> Plan:
        if on_device(self.forward.num, device) and on_device(self.backward.num, device):
            return self
        ts = move(self.forward.tensors() + self.backward.tensors(), device)
        return Plan(self.nq, self.nk, self.block_q, self.block_k, self.groups,
                    self.forward.with_tensors(ts[:14]), self.backward.with_tensors(ts[14:]), self.strategies,
                    self.stats)
