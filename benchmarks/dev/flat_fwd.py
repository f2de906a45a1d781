"""A persistent forward with one flat, pipelined loop over (query tile, key tile) steps
(session 12, issue #6): does prefetching across work items close the gap to cuDNN on short rows?

On ``blocks(256) & causal`` a work item is one to four 64x64 tiles, so the current kernel (one
program per item, one loop per item) has little to overlap inside a program: at 64k tokens, D=64,
it moves 2.2 TB/s where dense cuDNN on the same problem (``blocked_sdpa.py``) moves 2.8. Here a
program walks a contiguous run of items as one loop of steps, so Triton's software pipeliner
prefetches the next steps' K / V (and Q) across item boundaries; an item's first step resets the
softmax state, its last stores the row. Hard-coded for block-local patterns, contiguous
``[1, H, n, D]`` bf16 inputs, 64x64 tiles; checked against ``patternc``'s forward.

    FF_N=65536 python benchmarks/dev/flat_fwd.py     # $OUT/flat_fwd.json
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl
from devcommon import DT, H, add_row, block_local_refs, median_ms

N = int(os.environ.get("FF_N", "65536"))
D = int(os.environ.get("FF_D", "64"))
BLOCK, SPAN = 64, 256
FIRST, LAST, PARTIAL = 1, 2, 4


@triton.jit
def flat_fwd(Q, K, V, O, LSE, STEPS, PSTART, qk_scale, N, nqb,
             BLOCK: tl.constexpr, D: tl.constexpr, CAUSAL: tl.constexpr, STAGES: tl.constexpr,
             QMODE: tl.constexpr, STORE_IF: tl.constexpr):
    pid = tl.program_id(0)
    s0 = tl.load(PSTART + pid)
    s1 = tl.load(PSTART + pid + 1)
    offs = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, D)
    m_i = tl.full([BLOCK], -1.0e30, tl.float32)
    l_i = tl.zeros([BLOCK], tl.float32)
    acc = tl.zeros([BLOCK, D], tl.float32)
    q = tl.zeros([BLOCK, D], Q.dtype.element_ty)
    for s in tl.range(s0, s1, num_stages=STAGES):
        row = tl.load(STEPS + 3 * s)
        kb = tl.load(STEPS + 3 * s + 1)
        fl = tl.load(STEPS + 3 * s + 2)
        h = row // nqb
        qb = row - h * nqb
        base = h.to(tl.int64) * N * D
        rows = qb * BLOCK + offs
        keys = kb * BLOCK + offs
        first = (fl & 1) != 0
        if QMODE == 0:  # every step loads its query tile (from L2 after the first)
            q = tl.load(Q + base + rows[:, None] * D + offs_d[None, :])
        else:  # only an item's first step reads it; the masked load keeps the loop pipelineable
            fresh = tl.load(Q + base + rows[:, None] * D + offs_d[None, :],
                            mask=((offs * 0 + (fl & 1)) != 0)[:, None], other=0.0)
            q = tl.where(first, fresh, q)
        kt = tl.load(K + base + keys[None, :] * D + offs_d[:, None])
        v = tl.load(V + base + keys[:, None] * D + offs_d[None, :])
        m_i = tl.where(first, -1.0e30, m_i)
        l_i = tl.where(first, 0.0, l_i)
        acc = tl.where(first, 0.0, acc)
        sc = tl.dot(q, kt)
        if CAUSAL:
            ok = (rows[:, None] >= keys[None, :]) | ((fl & 4) == 0)
            sc = tl.where(ok, sc, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, 1) * qk_scale)
        p = tl.math.exp2(sc * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
        last = (fl & 2) != 0
        o_ptr = O + base + rows[:, None] * D + offs_d[None, :]
        lse = (m_i + tl.math.log2(l_i)) * 0.6931471805599453
        if STORE_IF:
            if last:
                tl.store(o_ptr, (acc / l_i[:, None]).to(O.dtype.element_ty))
                tl.store(LSE + h * N + rows, lse)
        else:  # a store on every step, masked off but on an item's last
            lastv = (offs * 0 + (fl & 2)) != 0
            tl.store(o_ptr, (acc / l_i[:, None]).to(O.dtype.element_ty), mask=lastv[:, None])
            tl.store(LSE + h * N + rows, lse, mask=lastv)


def steps(causal: bool) -> np.ndarray:
    """Rows (head * nqb + query block, key block, flags), heads slowest, then query blocks; FULL
    key blocks before the diagonal one."""
    nqb, per = N // BLOCK, SPAN // BLOCK
    out = []
    for qb in range(nqb):
        lo = qb - qb % per
        kbs = list(range(lo, qb + 1)) if causal else list(range(lo, lo + per))
        for j, kb in enumerate(kbs):
            fl = (FIRST if j == 0 else 0) | (LAST if j == len(kbs) - 1 else 0)
            fl |= PARTIAL if causal and kb == qb else 0
            out.append((qb, kb, fl))
    one = np.array(out, dtype=np.int64)
    allh = np.concatenate([one + np.array([h * nqb, 0, 0]) for h in range(H)])
    return allh.astype(np.int32)


def starts(st: np.ndarray, programs: int) -> np.ndarray:
    """Step index where each program's run of whole items begins (and the end)."""
    item_start = np.flatnonzero(st[:, 2] & FIRST)
    per = -(-item_start.size // programs)
    idx = np.minimum(np.arange(programs + 1) * per, item_start.size)
    bounds = np.append(item_start, st.shape[0])[idx]
    return bounds.astype(np.int32)


SCALE = 1.0 / math.sqrt(D) * 1.4426950408889634  # log2(e) / sqrt(D)


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows: list[dict[str, Any]] = []
    for causal, ref, ref_lse, row in block_local_refs(q, k, v):
        st_np = steps(causal)
        st = torch.from_numpy(st_np).cuda()
        o, lse = torch.empty_like(q), torch.empty(1, H, N, device="cuda")
        for mult, stages, qmode, store_if in itertools.product((2, 4, 8, 16), (2, 3, 4), (0, 1), (1, 0)):
            ps = torch.from_numpy(starts(st_np, sms * mult)).cuda()

            def run(ps: torch.Tensor = ps, stages: int = stages, qmode: int = qmode, store_if: int = store_if,
                    causal: bool = causal, t: tuple[torch.Tensor, ...] = (o, lse, st)) -> None:
                flat_fwd[(ps.numel() - 1,)](q, k, v, *t, ps, SCALE, N, N // BLOCK, BLOCK=BLOCK, D=D,
                                            CAUSAL=causal, STAGES=stages, QMODE=qmode, STORE_IF=store_if,
                                            num_warps=4, num_stages=stages)
            try:
                o.zero_()
                run()
                err = float((o.float() - ref.float()).abs().max())
                lerr = float((lse - ref_lse).abs().max())
                row[f"x{mult} s{stages} q{qmode} if{store_if}"] = (median_ms(run), err, lerr)
            except Exception as e:  # a sweep records failures
                row[f"x{mult} s{stages} q{qmode} if{store_if}"] = repr(e)[:200]
        add_row(rows, row, "flat_fwd.json")


if __name__ == "__main__":
    main()
