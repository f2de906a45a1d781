"""The dense reference: SPEC section 1 evaluated literally on every (query, key) pair.

This module defines correctness. It materializes ``nq x nk`` arrays and is meant for tests,
small ``n`` and ``patternc mask``; optimized code never imports it.

    >>> from patternc.ir import Band
    >>> mask(Band(1), 4).int().tolist()
    [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
"""

from __future__ import annotations

import math

import numpy as np
import torch

from patternc import ir
from patternc.rng import random_key_blocks, random_keys


def mask(node: ir.Node, n: int, nk: int | None = None, heads: int | None = None) -> torch.Tensor:
    """Boolean mask ``[nq, nk]`` (``[H, nq, nk]`` when ``heads`` is given), ``nq = n``."""
    nq, nk = n, (n if nk is None else nk)
    if nq < 0 or nk < 0:
        raise ir.PatternError(f"lengths must be >= 0, got nq={nq}, nk={nk}")
    groups = ir.head_groups(node, heads)
    if heads is None:
        return torch.from_numpy(mask_np(groups[0], nq, nk))
    cache: dict[ir.Node, np.ndarray] = {}
    for g in groups:
        if g not in cache:
            cache[g] = mask_np(g, nq, nk)
    planes = [cache[g] for g in groups]
    return torch.from_numpy(np.stack(planes) if planes else np.zeros((0, nq, nk), dtype=bool))


def mask_np(node: ir.Node, nq: int, nk: int) -> np.ndarray:
    """Boolean numpy mask of a head-free pattern."""
    node = ir.concretize(node, nk)
    ir.check_arguments(node)
    p = np.arange(nq, dtype=np.int64)[:, None] + (nk - nq)
    j = np.arange(nk, dtype=np.int64)[None, :]
    return np.broadcast_to(_eval(node, p, j, nq, nk), (nq, nk)).copy()


def _in(x: np.ndarray, tokens: ir.TokenList, n: int) -> np.ndarray:
    hit = np.zeros(x.shape, dtype=bool)
    for a, b in tokens.intervals(n):
        hit |= (x >= a) & (x < b)
    return hit


def _eval(node: ir.Node, p: np.ndarray, j: np.ndarray, nq: int, nk: int) -> np.ndarray:
    d = p - j
    match node:
        case ir.Full():
            return np.ones((nq, nk), dtype=bool)
        case ir.Empty():
            return np.zeros((nq, nk), dtype=bool)
        case ir.Causal():
            return d >= 0
        case ir.Window(left, right):
            return (d >= -int(right)) & (d <= int(left))
        case ir.Band(w):
            return np.abs(d) <= int(w)
        case ir.Dilated(w, r):
            return (np.abs(d) <= int(w) * int(r)) & (d % int(r) == 0)
        case ir.Strided(s):
            return d % int(s) == 0
        case ir.Blocks(b):
            return p // int(b) == j // int(b)
        case ir.Fixed(l, c):
            return (p // int(l) == j // int(l)) | (j % int(l) >= int(l) - int(c))
        case ir.Rows(t):
            return np.broadcast_to(_in(p, t, nk), (nq, nk))
        case ir.Cols(t):
            return np.broadcast_to(_in(j, t, nk), (nq, nk))
        case ir.Global(t):
            return _in(p, t, nk) | _in(j, t, nk)
        case ir.Prefix(m):
            return (p < int(m)) & (j < int(m))
        case ir.Steps(lq, lk, shift):
            return j // int(lk) < (p + int(shift)) // int(lq)
        case ir.Random(r, seed):
            out = np.zeros((nq, nk), dtype=np.bool_)
            np.put_along_axis(out, random_keys(int(r), int(seed), p[:, 0], nk), True, axis=1)
            return out
        case ir.RandomBlocks(r, b, seed):
            b = int(b)
            uniq, inv = np.unique(p[:, 0] // b, return_inverse=True)
            chosen = np.zeros((uniq.size, math.ceil(nk / b)), dtype=np.bool_)
            np.put_along_axis(chosen, random_key_blocks(int(r), b, int(seed), uniq, nk), True, axis=1)
            return chosen[inv.reshape(-1)][:, j[0] // b]
        case ir.Union(parts):
            return np.logical_or.reduce([_eval(c, p, j, nq, nk) for c in parts])
        case ir.Intersect(parts):
            return np.logical_and.reduce([_eval(c, p, j, nq, nk) for c in parts])
        case ir.Diff(a, b):
            return _eval(a, p, j, nq, nk) & ~_eval(b, p, j, nq, nk)
        case ir.Complement(a):
            return ~_eval(a, p, j, nq, nk)
        case ir.Heads():
            raise ir.PatternError("a heads(...) pattern needs the number of heads")
    raise TypeError(f"unknown pattern node {node!r}")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, node: ir.Node,
              scale: float | None = None) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` in float64 with empty rows giving 0 (SPEC section 5).

    Shapes: q ``[B, H, nq, D]``, k and v ``[B, Hkv, nk, D]``; differentiable.
    """
    H, nq, D = q.shape[1:]
    Hkv, nk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    m = mask(node, nq, nk, heads=H if ir.head_counts(node) > 1 else None).to(q.device)
    m = m if m.dim() == 3 else m.expand(H, nq, nk)
    kk = k.double().repeat_interleave(H // Hkv, dim=1)
    vv = v.double().repeat_interleave(H // Hkv, dim=1)
    s = (q.double() @ kk.transpose(-1, -2)) * scale
    s = s.masked_fill(~m, float("-inf"))
    # rows without keys: softmax of all -inf is NaN; give them zero weights instead
    empty = ~m.any(-1, keepdim=True)
    w = torch.softmax(s.masked_fill(empty, 0.0), dim=-1).masked_fill(~m, 0.0)
    return (w @ vv).to(q.dtype)
