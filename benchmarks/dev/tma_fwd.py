"""Block-local forward without tables, with pointer or TMA (tensor descriptor) loads (session 12,
issue #6): how much of the gap to cuDNN on short rows (``blocked_sdpa.py``) is the block tables'
indirection, and how much the load path?

One program per (64-row query block, head) of ``blocks(256)`` / ``blocks(256) & causal``: its key
blocks follow from its index (no WORK / IDX tables), FULL ones first, then the diagonal one
(masked) in the causal case. ``TMA``: Q, K, V tiles through ``TensorDescriptor`` loads (Hopper's
TMA unit) instead of pointer arithmetic. Contiguous ``[1, H, n, D]`` bf16 inputs; each variant
is checked against ``patternc``'s forward and timed beside it.

    TF_N=65536 TF_TMA=0,1 TF_LEVELS=0,1,2 python benchmarks/dev/tma_fwd.py     # $OUT/tma_fwd.json

``TF_LEVELS``: how many dependent table loads precede a program's first key tile (0: none, the
blocks follow from the program's index; 1: a per-row run; 2: a work item's row, then each key
block's index, as in ``codegen.forward``).
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import torch
import triton
import triton.language as tl
from devcommon import DT, H, add_row, block_local_refs, median_ms

N = int(os.environ.get("TF_N", "65536"))
D = int(os.environ.get("TF_D", "64"))
BLOCK, SPAN = 64, 256
SCALE = 1.0 / math.sqrt(D) * 1.4426950408889634  # log2(e) / sqrt(D)
TMAS = [bool(int(x)) for x in os.environ.get("TF_TMA", "0,1").split(",")]
LEVELS = [int(x) for x in os.environ.get("TF_LEVELS", "0").split(",")]


@triton.jit
def _tile(acc, l_i, m_i, q, Kp, Vp, dk, dv, krow, rows, offs, offs_d, qk_scale,
          D: tl.constexpr, BLOCK: tl.constexpr, MASK: tl.constexpr, TMA: tl.constexpr):
    if TMA:
        k = dk.load([krow, 0])
        v = dv.load([krow, 0])
    else:
        k = tl.load(Kp + (krow + offs)[:, None] * D + offs_d[None, :])
        v = tl.load(Vp + (krow + offs)[:, None] * D + offs_d[None, :])
    s = tl.dot(q, tl.trans(k))
    if MASK:
        s = tl.where(rows[:, None] >= (krow + offs)[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    p = tl.math.exp2(s * qk_scale - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
    return acc, l_i, m_new


@triton.jit
def block_fwd(Q, K, V, O, LSE, dq, dk, dv, WK, RT, IX, N, qk_scale, BLOCK: tl.constexpr, D: tl.constexpr,
              SPAN: tl.constexpr, CAUSAL: tl.constexpr, TMA: tl.constexpr, STAGES: tl.constexpr,
              LEVELS: tl.constexpr):
    # LEVELS: dependent table loads before the first key tile: 0 arithmetic, 1 a per-row run
    # (first FULL block, end), 2 a work item's row, then each block's index (our kernels' layout)
    h = tl.program_id(1)
    if LEVELS == 2:
        qb = tl.load(WK + tl.program_id(0))
    else:
        qb = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, D)
    row0 = h * N + qb * BLOCK  # rows of the [H * n, D] views
    rows = row0 + offs
    if TMA:
        q = dq.load([row0, 0])
    else:
        q = tl.load(Q + rows[:, None] * D + offs_d[None, :])
    if LEVELS == 1:
        lo = tl.load(RT + 2 * qb)
        hi = tl.load(RT + 2 * qb + 1)
    else:
        lo = (qb * BLOCK // SPAN) * (SPAN // BLOCK)
        hi = qb if CAUSAL else lo + SPAN // BLOCK
    m_i = tl.full([BLOCK], -1.0e30, tl.float32)
    l_i = tl.zeros([BLOCK], tl.float32)
    acc = tl.zeros([BLOCK, D], tl.float32)
    for t in tl.range(lo, hi, num_stages=STAGES):
        kb = tl.load(IX + 4 * qb + t - lo) if LEVELS == 2 else t
        acc, l_i, m_i = _tile(acc, l_i, m_i, q, K, V, dk, dv, h * N + kb * BLOCK, rows, offs, offs_d,
                              qk_scale, D, BLOCK, False, TMA)
    if CAUSAL:
        kd = tl.load(IX + 4 * qb + 3) if LEVELS == 2 else qb
        acc, l_i, m_i = _tile(acc, l_i, m_i, q, K, V, dk, dv, h * N + kd * BLOCK, rows, offs, offs_d,
                              qk_scale, D, BLOCK, True, TMA)
    tl.store(O + rows[:, None] * D + offs_d[None, :], (acc / l_i[:, None]).to(O.dtype.element_ty))
    tl.store(LSE + rows, (m_i + tl.math.log2(l_i)) * 0.6931471805599453)


def tables(n: int, causal: bool, device: Any) -> tuple[torch.Tensor, ...]:
    """Work rows (natural order), per-row FULL runs (start, end), per-row block indices (FULL
    blocks, then the diagonal one in the last slot when causal)."""
    nqb, per = n // BLOCK, SPAN // BLOCK
    qb = torch.arange(nqb)
    lo = qb - qb % per
    hi = qb if causal else lo + per
    ix = (lo[:, None] + torch.arange(4)[None, :]).clone()
    if causal:
        ix[:, 3] = qb
    return (qb.int().to(device), torch.stack([lo, hi], 1).int().to(device), ix.int().to(device))


def launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
           causal: bool, tma: bool, stages: int, warps: int, levels: int = 0,
           tabs: tuple[torch.Tensor, ...] | None = None) -> None:
    from triton.tools.tensor_descriptor import TensorDescriptor

    n, d = q.shape[2], q.shape[3]
    flat = [t.view(-1, d) for t in (q, k, v)]
    descs = [TensorDescriptor.from_tensor(t, [BLOCK, d]) for t in flat] if tma else [None] * 3
    tabs = tabs or tables(n, causal, q.device)
    block_fwd[(n // BLOCK, q.shape[1])](*flat, o, lse, *descs, *tabs, n, SCALE, BLOCK=BLOCK, D=d, SPAN=SPAN,
                                       CAUSAL=causal, TMA=tma, STAGES=stages, LEVELS=levels, num_warps=warps,
                                       num_stages=stages)


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    o, lse = torch.empty_like(q), torch.empty(1, H, N, device="cuda")
    rows: list[dict[str, Any]] = []
    for causal, ref, ref_lse, row in block_local_refs(q, k, v):
        tabs = tables(N, causal, q.device)
        for tma, stages, levels in itertools.product(TMAS, (1, 2, 3), LEVELS):
            key = f"{'tma' if tma else 'ptr'} s{stages} w4 l{levels}"
            try:
                o.zero_()
                launch(q, k, v, o, lse, causal, tma, stages, 4, levels, tabs)
                err = float((o.float() - ref.float()).abs().max())
                lerr = float((lse - ref_lse).abs().max())
                ms = median_ms(lambda c=causal, t=tma, s=stages, lv=levels, tb=tabs:
                               launch(q, k, v, o, lse, c, t, s, 4, lv, tb))
                row[key] = (ms, err, lerr)
            except Exception as e:  # a sweep records failures
                row[key] = repr(e)[:300]
        add_row(rows, row, "tma_fwd.json")


if __name__ == "__main__":
    main()
