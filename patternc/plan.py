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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class BlockTables:
    """One direction of the block lists, ``[G, rows, ...]`` int32 tensors.

    ``num[g, r]`` PARTIAL blocks listed in ``idx[g, r, :num[g, r]]``; ``full_num`` / ``full_idx``
    the same for FULL blocks. Forward rows are query blocks listing key blocks; the transposed
    tables (backward dK/dV) have key-block rows listing query blocks.
    """

    num: torch.Tensor
    idx: torch.Tensor
    full_num: torch.Tensor
    full_idx: torch.Tensor

    def to(self, device: torch.device | str) -> BlockTables:
        return BlockTables(*(t.to(device) for t in (self.num, self.idx, self.full_num, self.full_idx)))


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

    def to(self, device: torch.device | str) -> Plan:
        return Plan(self.nq, self.nk, self.block_q, self.block_k, self.groups, self.forward.to(device),
                    self.backward.to(device), self.strategies, self.stats)
