"""Residue-gathered causal groups without tables (session 16, issue #6): how much does gathering
rows by residue class cost a FlashAttention-style kernel, and do TMA loads or other program
shapes take it back?

``sparse_transformer_stride`` (``strided(256) & causal``) at 64k tokens is 256 residue classes of
256 rows (``c + 256 t``), each a causal group: the same work as ``block_local_causal``
(``blocks(256) & causal``), whose groups are contiguous. Our kernels run the first 13% slower
than the second, where the bare data movement of the two differs by 2% (``roofline.py``). Here one
table-free kernel runs both layouts; variants:

* ``ptr`` / ``tma``: pointer loads, or TMA loads (``TensorDescriptor``; gathered rows through a
  3-D view ``[H * n / R, R, D]`` and a ``[BM, 1, D]`` box: one strided copy per tile);
* ``tile`` / ``class``: one program per (query tile, head, class), as ours, or one per (head,
  class) walking the class's query tiles (K / V of a class then come from L1 / L2 of one SM);
* ``BN``: key tile width (64, or 128: fewer, wider key tiles, more masked work);
* stages 2 and 3.

Each variant is checked against ``patternc``'s forward of the same pattern and timed beside it.

    GT_N=65536 python benchmarks/dev/gather_tma.py       # $OUT/gather_tma.json
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import torch
import triton
import triton.language as tl
from devcommon import DT, H, add_row, median_ms, node_of

N = int(os.environ.get("GT_N", "65536"))
D = int(os.environ.get("GT_D", "64"))
R = int(os.environ.get("GT_R", "256"))  # classes (gathered layout) / group size (contiguous layout)
BM = 64
SCALE = 1.0 / math.sqrt(D) * 1.4426950408889634


@triton.jit
def _load(P, desc, idx0, idx, c, h, n_h, offs_d, R: tl.constexpr, D: tl.constexpr, ROWS: tl.constexpr,
          GATHER: tl.constexpr, TMA: tl.constexpr):
    """Rows ``idx`` (= idx0 + arange, head-local, gathered coordinates) of head ``h``."""
    if TMA:
        if GATHER:
            return desc.load([h * n_h + idx0, c, 0]).reshape(ROWS, D)
        return desc.load([h * n_h + idx0, 0])
    phys = c + R * idx if GATHER else idx
    return tl.load(P + (h * n_h * (R if GATHER else 1) + phys)[:, None] * D + offs_d[None, :])


@triton.jit
def _query_tile(Q, K, V, O, LSE, dq, dk, dv, u, c, h, n_h, qk_scale, R: tl.constexpr, D: tl.constexpr,
                BM: tl.constexpr, BN: tl.constexpr, GATHER: tl.constexpr, TMA: tl.constexpr,
                STAGES: tl.constexpr):
    offs_m = u * BM + tl.arange(0, BM)
    offs_d = tl.arange(0, D)
    q = _load(Q, dq, u * BM, offs_m, c, h, n_h, offs_d, R, D, BM, GATHER, TMA)
    m_i = tl.full([BM], -1.0e30, tl.float32)
    l_i = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, D], tl.float32)
    # keys of the group up to this tile's last row: whole BN tiles below its first row, then masked
    g0 = (u * BM // (R if not GATHER else n_h)) * (R if not GATHER else n_h)  # the group's first row
    full_end = (u * BM - g0) // BN
    end = (u * BM + BM - 1 - g0) // BN + 1
    for t in tl.range(0, end, num_stages=STAGES):
        offs_n = g0 + t * BN + tl.arange(0, BN)
        k = _load(K, dk, g0 + t * BN, offs_n, c, h, n_h, offs_d, R, D, BN, GATHER, TMA)
        v = _load(V, dv, g0 + t * BN, offs_n, c, h, n_h, offs_d, R, D, BN, GATHER, TMA)
        s = tl.dot(q, tl.trans(k))
        if t >= full_end:
            s = tl.where(offs_m[:, None] >= offs_n[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
        p = tl.math.exp2(s * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    phys = c + R * offs_m if GATHER else offs_m
    rows = h * n_h * (R if GATHER else 1) + phys
    tl.store(O + rows[:, None] * D + offs_d[None, :], (acc / l_i[:, None]).to(O.dtype.element_ty))
    tl.store(LSE + rows, (m_i + tl.math.log2(l_i)) * 0.6931471805599453)


@triton.jit
def causal_groups(Q, K, V, O, LSE, dq, dk, dv, n_h, qk_scale, R: tl.constexpr, D: tl.constexpr,
                  BM: tl.constexpr, BN: tl.constexpr, GATHER: tl.constexpr, TMA: tl.constexpr,
                  STAGES: tl.constexpr, PER_CLASS: tl.constexpr, TILES: tl.constexpr):
    """Grid (query tiles, H, classes), or (1, H, classes) with PER_CLASS (TILES tiles a program).
    ``n_h``: rows per head in the descriptor's outer dimension (n / R gathered, n contiguous)."""
    h = tl.program_id(1)
    c = tl.program_id(2)
    if PER_CLASS:
        if GATHER:  # the class's tiles
            first = c * 0
        else:  # the group's tiles (axis 2 walks the contiguous groups)
            first = c * TILES
        for u in tl.static_range(TILES):
            _query_tile(Q, K, V, O, LSE, dq, dk, dv, first + u, c, h, n_h, qk_scale, R, D, BM, BN, GATHER,
                        TMA, STAGES)
    else:
        _query_tile(Q, K, V, O, LSE, dq, dk, dv, tl.program_id(0), c, h, n_h, qk_scale, R, D, BM, BN,
                    GATHER, TMA, STAGES)


def launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
           gather: bool, tma: bool, per_class: bool, bn: int, stages: int) -> None:
    from triton.tools.tensor_descriptor import TensorDescriptor

    h, n, d = q.shape[1], q.shape[2], q.shape[3]
    if gather:  # class c of head h: rows (h * n / R + t, c) of the [H * n / R, R, D] view
        n_h, grid_cls, tiles = n // R, R, n // R // BM
        descs = [TensorDescriptor(t, [h * n_h, R, d], [R * d, d, 1], [b, 1, d])
                 for t, b in ((q, BM), (k, bn), (v, bn))] if tma else [None] * 3
    else:  # group g of head h: rows h * n + g * R + t of the [H * n, D] view
        n_h, grid_cls, tiles = n, 1, n // BM
        descs = [TensorDescriptor(t, [h * n, d], [d, 1], [b, d])
                 for t, b in ((q, BM), (k, bn), (v, bn))] if tma else [None] * 3
    grid = (1 if per_class else tiles, h, grid_cls)
    if per_class and not gather:  # a program per group of R rows: axis 2 walks the groups
        grid, tiles = (1, h, n // R), R // BM
    causal_groups[grid](q, k, v, o, lse, *descs, n_h, SCALE, R=R, D=d, BM=BM, BN=bn, GATHER=gather, TMA=tma,
                        STAGES=stages, PER_CLASS=per_class, TILES=tiles, num_warps=4, num_stages=stages)


def main() -> None:
    import importlib

    rf = importlib.import_module("patternc.runtime.forward")
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    o, lse = torch.empty_like(q), torch.empty(1, H, N, device="cuda")
    rows: list[dict[str, Any]] = []
    for gather, name in ((True, "sparse_transformer/sparse_transformer_stride"),
                         (False, "block_local/block_local_causal")):
        node = node_of(name)
        ref, ref_lse = rf.forward(q, k, v, node)
        row: dict[str, Any] = {"pattern": name, "n": N, "d": D,
                               "ours": median_ms(lambda node=node: rf.forward(q, k, v, node))}
        for tma, per_class, bn, stages in itertools.product((False, True), (False, True), (64, 128), (2, 3)):
            key = f"{'tma' if tma else 'ptr'} {'class' if per_class else 'tile'} bn{bn} s{stages}"
            args = (q, k, v, o, lse, gather, tma, per_class, bn, stages)
            try:
                o.zero_()
                launch(*args)
                err = float((o.float() - ref.float()).abs().max())
                lerr = float((lse - ref_lse).abs().max())
                row[key] = (median_ms(lambda a=args: launch(*a)), err, lerr)  # type: ignore[misc]
            except Exception as e:  # a sweep records failures
                row[key] = repr(e)[:300]
        add_row(rows, row, "gather_tma.json")


if __name__ == "__main__":
    main()
