"""A pattern as a FlexAttention ``BlockMask``, built from the plan's tables (no dense evaluation).

    >>> from patternc.ir import Band, Causal
    >>> bm = to_flex(Band(64) & Causal(), 1024, block_size=128)
    >>> tuple(bm.kv_num_blocks.shape), bm.BLOCK_SIZE
    ((1, 1, 8), (128, 128))

The block lists come from :func:`patternc.lower.lower` (forward and transposed tables, padded to
FlexAttention's width: the number of key blocks, resp. query blocks); the ``mask_mod`` is the
pattern's predicate written as torch arithmetic on ``q_idx`` / ``kv_idx``
(:func:`patternc.lower.predicate.predicate`), with random primitives read from lookup tables drawn
once from :mod:`patternc.rng`. ``heads(...)`` patterns give a per-head mask (``heads`` required).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from patternc import ir
from patternc.lower import lower
from patternc.lower.predicate import predicate
from patternc.rng import random_key_blocks, random_keys

__all__ = ["mask_mod", "to_flex"]


class TorchEnv:
    """Random keys as tables indexed by the query index (drawn once, on ``device``)."""

    def __init__(self, nq: int, nk: int, device: torch.device | str) -> None:
        self.nq, self.nk, self.off, self.device = nq, nk, nk - nq, device
        self._tables: dict[ir.Node, tuple[torch.Tensor, int]] = {}

    def table(self, node: ir.Node) -> tuple[torch.Tensor, int]:
        if node not in self._tables:
            if isinstance(node, ir.Random):
                pos = np.arange(self.nq, dtype=np.int64) + self.off
                keys, base = random_keys(int(node.r), int(node.seed), pos, self.nk), self.off
            else:
                assert isinstance(node, ir.RandomBlocks)
                b = int(node.b)
                first, last = min(self.off, 0) // b, max(self.nk - 1, 0) // b
                keys = random_key_blocks(int(node.r), b, int(node.seed), np.arange(first, last + 1), self.nk)
                base = first
            # one contiguous column per draw: a 1-D gather per draw inside the mask_mod
            table = torch.from_numpy(np.ascontiguousarray(keys.T)).to(device=self.device, dtype=torch.int64)
            self._tables[node] = (table, base)
        return self._tables[node]

    def _lookup(self, node: ir.Node, row: Any) -> list[Any]:
        table, base = self.table(node)
        if table.shape[1] == 0:
            return []
        # FlexAttention may evaluate padded positions past the end: clamp, the block tables decide
        i = torch.clamp(row - base, 0, table.shape[1] - 1)
        return [table[t][i] for t in range(table.shape[0])]

    def keys(self, node: ir.Random, p: Any) -> list[Any]:
        return self._lookup(node, p)

    def key_blocks(self, node: ir.RandomBlocks, p: Any) -> list[Any]:
        return self._lookup(node, p // int(node.b))


def mask_mod(node: ir.Node, nq: int, nk: int | None = None, *, heads: int | None = None,
             device: torch.device | str = "cpu"):  # type: ignore[no-untyped-def]
    """FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` equivalent to ``node`` at these lengths."""
    nk = nq if nk is None else nk
    node = ir.concretize(node, nk)
    ir.check_arguments(node)
    G = ir.head_counts(node)
    if G > 1 and heads is None:
        raise ir.PatternError("a heads(...) pattern needs the number of heads")
    if heads is not None:
        ir.check_heads(node, heads)
    groups = [ir.select_head(node, g, G) for g in range(G)]
    env = TorchEnv(nq, nk, device)
    for sub in node.walk():
        if isinstance(sub, (ir.Random, ir.RandomBlocks)):
            env.table(sub)  # drawn now, outside any tracing of the mask_mod
    off = nk - nq

    def mod(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
        p = q_idx + off
        if G == 1:
            return predicate(groups[0], p, kv_idx, nk, env)
        g = h * G // heads
        out = predicate(groups[0], p, kv_idx, nk, env) & (g == 0)
        for k in range(1, G):
            out = out | (predicate(groups[k], p, kv_idx, nk, env) & (g == k))
        return out

    return mod


def _per_head(t: torch.Tensor, G: int, heads: int | None) -> torch.Tensor:
    """``[G, ...]`` -> ``[1, H or 1, ...]``: head h of H uses group h * G // H."""
    if G == 1:
        return t[None]
    assert heads is not None
    return t[torch.arange(heads, device=t.device) * G // heads][None]


def to_flex(node: ir.Node, nq: int, nk: int | None = None, *, block_size: int | tuple[int, int] = 128,
            heads: int | None = None, device: torch.device | str = "cpu") -> Any:
    """A ``torch.nn.attention.flex_attention.BlockMask`` for ``node`` with ``nq`` queries and
    ``nk`` keys (default ``nq``); ``block_size`` is FlexAttention's (an int or ``(q, kv)``)."""
    from torch.nn.attention.flex_attention import BlockMask

    nk = nq if nk is None else nk
    bq, bk = (block_size, block_size) if isinstance(block_size, int) else block_size
    G = ir.head_counts(node)
    if G > 1 and heads is None:
        raise ir.PatternError("a heads(...) pattern needs the number of heads")
    plan = lower(node, nq, nk, block_q=bq, block_k=bk, heads=heads).to(device)  # expanded there
    R, C = plan.num_q_blocks, plan.num_k_blocks
    f, b = plan.forward, plan.backward

    def prep(t: torch.Tensor, width: int | None = None) -> torch.Tensor:
        # copy the compact table, pad on the device: padding on the host costs more than the copy
        t = t.to(device=device, dtype=torch.int32)
        if width is not None:
            out = torch.zeros((*t.shape[:-1], width), dtype=torch.int32, device=device)
            w = min(width, t.shape[-1])
            out[..., :w] = t[..., :w]
            t = out
        return _per_head(t, G, heads).contiguous()

    return BlockMask(
        seq_lengths=(nq, nk),
        kv_num_blocks=prep(f.num), kv_indices=prep(f.idx, C),
        full_kv_num_blocks=prep(f.full_num), full_kv_indices=prep(f.full_idx, C),
        q_num_blocks=prep(b.num), q_indices=prep(b.idx, R),
        full_q_num_blocks=prep(b.full_num), full_q_indices=prep(b.full_idx, R),
        BLOCK_SIZE=(bq, bk), mask_mod=mask_mod(node, nq, nk, heads=heads, device=device),
    )
