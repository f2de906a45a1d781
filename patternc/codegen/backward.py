"""Backward kernels: Triton source generated per pattern (FlashAttention-2 style).

The launches of a backward call:

* ``preprocess`` (pattern-independent, defined here): ``delta = rowsum(dO * O)`` and the LSE
  moved to base 2, with rows that have no keys (LSE ``-inf``) mapped to ``+inf`` so that every
  probability recomputed for them is ``exp2(-inf) = 0``: zero gradients, never NaN. Calls whose
  dK/dV and dQ programs launch separately skip it: the dQ launch runs first and its programs
  compute their rows' statistics (``STATS``, ``row_stats``) for the dK/dV launch after it.
* ``bwd_kernel`` (generated, small grids): its first programs compute dK / dV, the rest dQ, so
  that dQ's programs start while dK / dV's last ones run; ``dkdv_kernel`` and ``dq_kernel``
  (larger grids) hold one kind each.

  * ``_dkdv_program``: ``BN`` keys of one KV head. It walks the plan's transposed tables
    (``plan.backward``: key-block rows listing query blocks), FULL blocks without the predicate
    and PARTIAL blocks with it, recomputes ``P`` from the saved LSE and accumulates
    ``dV += P^T dO`` and ``dK += dS^T Q``. Grouped-query attention loops over the query heads of
    the KV head inside the program, so GQA needs no atomics and no second pass.
  * ``_dq_program``: ``BM`` queries of one head, walking ``plan.forward``.

Both kinds take a list of work items (``patternc.runtime.backward.schedule``): tiles heaviest
first, and tiles with very long lists (global rows / columns) split over several programs that
add float32 partial sums atomically into a small buffer.

Residue-class execution (``patternc.runtime.residue``): with ``RES`` grid axis 1 is a residue
class and rows / keys are gathered coordinates (strided index arithmetic, no copies). A call of
several launches (disjoint parts) writes each head group once and adds after that
(``patternc.runtime.writes``): ``skip_groups`` (bit per head group) names the groups whose
programs return at once, ``add_groups`` those whose stores add to the gradients of the launches
before (compiled in only with ``ACCUM``).

The pattern enters only through ``_pattern(p, j, i, grp, ...)``, emitted from the IR by
``patternc.codegen.predicate``; a ``heads(...)`` pattern gives one branch per head group.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import triton
import triton.language as tl

from patternc import ir
from patternc.codegen import predicate

LOG2E = 1.4426950408889634


UNROLLED, ROLLED, FLAT = 0, 1, 2  # BackwardConfig.steps


@dataclass(frozen=True)
class BackwardConfig:
    """Tile sizes of the two generated kernels; ``block_q`` / ``block_k`` are the plan's blocks.

    ``dkdv`` programs own ``bn1`` keys and step over ``bm1`` queries at a time; ``dq`` programs
    own ``bm2`` queries and step over ``bn2`` keys. Each step size divides its plan block.
    ``chunk``: a tile listing more blocks than this is split over several programs whose float32
    partial sums are added atomically (0 picks ``max(8, 2 * mean blocks per tile)``).
    ``steps``: how a program walks the steps of its row's plan blocks (``UNROLLED``, ``ROLLED``,
    ``FLAT``; see ``_step_loop``). Unrolled steps each buffer their own loads: Flex-like 128x128
    plan blocks with 64-wide steps need 264,192 B of shared memory at 3 stages, rolled or flat
    ones 164,864 (offline sm_90 compile).
    ``dq_warps`` / ``dq_stages``: the dQ kernel's own launch options where they differ from dK/dV's
    (0: the same), e.g. a 128-key dK/dV over 64-row plan blocks at 3 stages beside a dQ that
    steps 64 keys twice per block at 2. One launch of both (``bwd_kernel``) takes the smaller of
    each.
    """

    block_q: int = 128
    block_k: int = 128
    bm1: int = 32
    bn1: int = 128
    bm2: int = 128
    bn2: int = 32
    num_warps: int = 4
    num_stages: int = 2
    chunk: int = 0  # list entries per work item before a tile is split; 0: automatic
    dq_warps: int = 0  # 0: num_warps
    dq_stages: int = 0  # 0: num_stages
    steps: int = 0  # UNROLLED, ROLLED or FLAT

    @property
    def dq_launch(self) -> tuple[int, int]:
        """``(num_warps, num_stages)`` of the dQ kernel."""
        return self.dq_warps or self.num_warps, self.dq_stages or self.num_stages

    @property
    def fused_launch(self) -> tuple[int, int]:
        """``(num_warps, num_stages)`` of one launch running both kinds of program."""
        warps, stages = self.dq_launch
        return min(warps, self.num_warps), min(stages, self.num_stages)

    def check(self) -> None:
        if self.block_k % self.bn1 or self.block_q % self.bm1 or self.block_q % self.bm2 \
                or self.block_k % self.bn2:
            raise ValueError(f"tile sizes must divide the plan blocks: {self}")


# 64x64 tiles stepped 64 rows / keys at a time, with Hopper's shared memory, for every D <= 128
# (patternc.runtime.backward.dense_config picks it at D > 64, where the portable rule steps 32).
# H100, bf16, D=128, ms, portable rule -> this (benchmarks/results/sweep_bwd_h100_2026-11-22_s7_*):
# causal 16k 7.39 -> 6.19 (the 128x128 tiles used until session 6: 6.71; FlexAttention ~7.0),
# full 64k 273 -> 217 (229; FlexAttention 231), sliding_window_causal 64k 15.80 -> 13.22 (13.97;
# 14.0-14.1), band(256) 64k 2.93 -> 2.61, Longformer 3.68 -> 3.31, block_local 1.99 -> 1.94
WIDE_STEPS = BackwardConfig(64, 64, 64, 64, 64, 64, num_warps=4, num_stages=2)


def fit_config(cfg: BackwardConfig, block_q: int, block_k: int) -> BackwardConfig:
    """``cfg`` with the plan's block sizes, tiles shrunk to divide them (all powers of two)."""
    out = BackwardConfig(block_q, block_k, min(cfg.bm1, block_q), min(cfg.bn1, block_k),
                         min(cfg.bm2, block_q), min(cfg.bn2, block_k), cfg.num_warps, cfg.num_stages,
                         cfg.chunk, cfg.dq_warps, cfg.dq_stages, cfg.steps)
    out.check()
    return out


def default_config(head_dim: int, interpret: bool) -> BackwardConfig:
    """Tiles for the GPU (by head dim) or small ones for Triton's interpreter."""
    if interpret:  # the interpreter pays per operation, not per element: few, mid-sized tiles
        return BackwardConfig(32, 32, 32, 32, 32, 32)
    # measured on an H100 at 16k tokens (benchmarks/RESULTS.md): 64x64 plan blocks beat 128x128
    # on bands and strided patterns (finer blocks skip more) and tie on causal; for D <= 64,
    # 64-wide steps beat 32-wide ones on all six benchmark patterns (by 2-13%)
    if head_dim <= 64:
        return WIDE_STEPS
    if head_dim <= 128:  # 32-wide steps: fits GPUs with less shared memory than Hopper's
        return BackwardConfig(64, 64, 32, 64, 64, 32, num_warps=4, num_stages=2)
    return BackwardConfig(64, 64, 16, 32, 32, 16, num_warps=4, num_stages=1)


# --------------------------------------------------------------------------- generated source

_HEADER = '''"""Backward kernels for the pattern: {sap}  (generated by patternc.codegen.backward)"""
import triton
import triton.language as tl

from patternc.codegen.backward import row_stats

'''

_KERNELS = '''
@triton.jit
def _dkdv_tile(dk, dv, k, v, Qh, DOh, LSEh, DELTAh, start_m, offs_n, offs_d, stride_qm, stride_dom,
               nq, nk, grp, qk_scale{targs}, res_c, res_r, res_u0, res_off, nq_phys,
               BM: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, MASKED: tl.constexpr, PREC: tl.constexpr,
               UPCAST: tl.constexpr, RES: tl.constexpr, EVEN_Q: tl.constexpr):
    offs_m = start_m + tl.arange(0, BM)
    if RES:  # gathered row u is physical row c + r * (u + u0) - off
        im = res_c + res_r * (offs_m + res_u0) - res_off
        rows = (im >= 0) & (im < nq_phys)
    else:
        im = offs_m
        rows = offs_m < nq
    q_ptr = Qh + im[:, None] * stride_qm + offs_d[None, :]
    do_ptr = DOh + im[:, None] * stride_dom + offs_d[None, :]
    if EVEN_Q and D == DP:  # every row of the step exists, no padded columns: unmasked loads
        q = tl.load(q_ptr)
        do = tl.load(do_ptr)
        lse = tl.load(LSEh + im)
        delta = tl.load(DELTAh + im)
    else:
        io = rows[:, None] & (offs_d[None, :] < D)
        q = tl.load(q_ptr, mask=io, other=0.0)
        do = tl.load(do_ptr, mask=io, other=0.0)
        # rows past nq read LSE = +inf: their probabilities are exactly 0
        lse = tl.load(LSEh + im, mask=rows, other=float("inf"))
        delta = tl.load(DELTAh + im, mask=rows, other=0.0)
    if UPCAST:
        q, do = q.to(tl.float32), do.to(tl.float32)
    pT = tl.math.exp2(tl.dot(k, tl.trans(q), input_precision=PREC) * qk_scale - lse[None, :])
    if MASKED:
        keep = _pattern(offs_m[None, :] + (nk - nq), offs_n[:, None], offs_m[None, :], grp, nq, nk{tnames})
        pT = tl.where(keep, pT, 0.0)
    dv += tl.dot(pT.to(do.dtype), do, input_precision=PREC)
    dpT = tl.dot(v, tl.trans(do), input_precision=PREC)
    dsT = pT * (dpT - delta[None, :])
    dk += tl.dot(dsT.to(q.dtype), q, input_precision=PREC)
    return dk, dv


@triton.jit
def _dkdv_program(Q, K, V, DO, LSE, DELTA, DK, DV, BUF, NUM, IDX, FNUM, FIDX, item, bh, res_c{targs},
                  sm_scale, qk_scale,
                  sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom,
                  sdkb, sdkh, sdkn, sdvb, sdvh, sdvn,
                  nq, nk, H, HKV, G, GT, rows, idx_w, fidx_w, n_slots,
                  res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
                  BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                  D: tl.constexpr, DP: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
                  EVEN_Q: tl.constexpr, RES: tl.constexpr, ACCUM: tl.constexpr,
                  HAS_PARTIAL: tl.constexpr, HAS_FULL: tl.constexpr):
    # dK, dV of work item ``item`` (tile, chunk c of nc, slot) for (batch x KV head) ``bh``. A tile
    # whose list is long is split: chunk c takes entries c, c + nc, ... and adds into BUF[slot].
    # RES: residue-class execution (patternc.runtime.residue): ``res_c`` is the class, rows and
    # keys are gathered coordinates (key t is physical key c + r * t); ACCUM adds into the dK / dV
    # that the branches before this one stored (disjoint branches add their gradients)
    pid = tl.load(item)
    c0 = tl.load(item + 1)
    nc = tl.load(item + 2)
    slot = tl.load(item + 3)
    b = bh // HKV
    kvh = bh % HKV
    start_n = pid * BN
    kb = start_n // BLOCK_K
    offs_n = start_n + tl.arange(0, BN)
    offs_d = tl.arange(0, DP)
    if RES:
        jn = res_c + res_r * offs_n
        io = (jn[:, None] < nk_phys) & (offs_d[None, :] < D)
    else:
        jn = offs_n
        io = (offs_n[:, None] < nk) & (offs_d[None, :] < D)
    k = tl.load(K + b * skb + kvh * skh + jn[:, None] * skn + offs_d[None, :], mask=io, other=0.0)
    v = tl.load(V + b * svb + kvh * svh + jn[:, None] * svn + offs_d[None, :], mask=io, other=0.0)
    if UPCAST:
        k, v = k.to(tl.float32), v.to(tl.float32)
    dk = tl.zeros([BN, DP], dtype=tl.float32)
    dv = tl.zeros([BN, DP], dtype=tl.float32)
    R = H // HKV
    # grouped-query attention: every query head of this KV head adds into the same dK, dV
    for h in range(kvh * R, kvh * R + R):
        grp = h * G // H
        row = (h * GT // H) * rows + kb
        Qh = Q + b * sqb + h * sqh
        DOh = DO + b * sdob + h * sdoh
        LSEh = LSE + (b * H + h) * nq_phys
        DELTAh = DELTA + (b * H + h) * nq_phys
        # the row's plan blocks, BM query rows at a time (``generate``: unrolled, rolled or flat
        # steps); a step past nq (last block) is all masked rows and adds exactly 0
        {dkdv_masked}
        {dkdv_full}
    dk = dk * sm_scale
    if slot < 0:
        dk_ptr = DK + b * sdkb + kvh * sdkh + jn[:, None] * sdkn + offs_d[None, :]
        dv_ptr = DV + b * sdvb + kvh * sdvh + jn[:, None] * sdvn + offs_d[None, :]
        if ACCUM:
            if _in_groups(add_groups, kvh * R * G // H):
                dk += tl.load(dk_ptr, mask=io, other=0.0).to(tl.float32)
                dv += tl.load(dv_ptr, mask=io, other=0.0).to(tl.float32)
        tl.store(dk_ptr, dk.to(DK.dtype.element_ty), mask=io)
        tl.store(dv_ptr, dv.to(DV.dtype.element_ty), mask=io)
    else:
        part = BUF + ((bh * n_slots + slot) * 2 * BN + tl.arange(0, BN)[:, None]) * DP + offs_d[None, :]
        tl.atomic_add(part, dk, sem="relaxed")
        tl.atomic_add(part + BN * DP, dv, sem="relaxed")


@triton.jit
def _dq_tile(dq, q, do, lse, delta, Kh, Vh, start_n, offs_m, offs_d, stride_kn, stride_vn,
             nq, nk, grp, qk_scale{targs}, res_c, res_r, nk_phys,
             BN: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, MASKED: tl.constexpr, EVEN_K: tl.constexpr,
             PREC: tl.constexpr, UPCAST: tl.constexpr, RES: tl.constexpr):
    offs_n = start_n + tl.arange(0, BN)
    if RES:
        jn = res_c + res_r * offs_n
        kok = jn < nk_phys
    else:
        jn = offs_n
        kok = offs_n < nk
    k_ptr = Kh + jn[:, None] * stride_kn + offs_d[None, :]
    v_ptr = Vh + jn[:, None] * stride_vn + offs_d[None, :]
    if EVEN_K and D == DP:  # every key of the step exists, no padded columns: unmasked loads
        k = tl.load(k_ptr)
        v = tl.load(v_ptr)
    else:
        io = kok[:, None] & (offs_d[None, :] < D)
        k = tl.load(k_ptr, mask=io, other=0.0)
        v = tl.load(v_ptr, mask=io, other=0.0)
    if UPCAST:
        k, v = k.to(tl.float32), v.to(tl.float32)
    p = tl.math.exp2(tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale - lse[:, None])
    if MASKED:
        keep = _pattern(offs_m[:, None] + (nk - nq), offs_n[None, :], offs_m[:, None], grp, nq, nk{tnames})
        if RES:  # a class may have one key fewer than the gathered grid
            keep = keep & kok[None, :]
        p = tl.where(keep, p, 0.0)
    elif not EVEN_K:
        # keys past nk (RES: past the class's keys) are zero-filled; drop them so that no
        # inf * 0 reaches dQ
        p = tl.where(kok[None, :], p, 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PREC)
    ds = p * (dp - delta[:, None])
    dq += tl.dot(ds.to(k.dtype), k, input_precision=PREC)
    return dq


@triton.jit
def _dq_program(Q, K, V, DO, LSE, DELTA, DQ, BUF, NUM, IDX, FNUM, FIDX, item, bh, res_c{targs},
                sm_scale, qk_scale,
                sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom, sdqb, sdqh, sdqm,
                nq, nk, H, HKV, G, GT, rows, idx_w, fidx_w, n_slots,
                res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
                O, LSE_IN, DLSE, sob, soh, som, slb, slh, slm, sgb, sgh, sgm,
                BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                D: tl.constexpr, DP: tl.constexpr, EVEN_K: tl.constexpr, PREC: tl.constexpr,
                UPCAST: tl.constexpr, RES: tl.constexpr, ACCUM: tl.constexpr,
                HAS_PARTIAL: tl.constexpr, HAS_FULL: tl.constexpr, STATS: tl.constexpr,
                HAS_DLSE: tl.constexpr):
    # dQ of work item ``item`` for (batch x head) ``bh``; split tiles, RES and ACCUM as in _dkdv_program.
    # STATS: no preprocess launch ran; the program computes its rows' delta and base-2 LSE from
    # O, dO and the forward's LSE (``LSE_IN``, natural log; ``DLSE``: its gradient), uses them and
    # stores them into DELTA / LSE for the dK/dV launch that follows
    pid = tl.load(item)
    c0 = tl.load(item + 1)
    nc = tl.load(item + 2)
    slot = tl.load(item + 3)
    b = bh // H
    h = bh % H
    kvh = h // (H // HKV)
    grp = h * G // H
    start_m = pid * BM
    qb = start_m // BLOCK_Q
    offs_m = start_m + tl.arange(0, BM)
    offs_d = tl.arange(0, DP)
    if RES:
        im = res_c + res_r * (offs_m + res_u0) - res_off
        rows_ok = (im >= 0) & (im < nq_phys)
    else:
        im = offs_m
        rows_ok = offs_m < nq
    io = rows_ok[:, None] & (offs_d[None, :] < D)
    q = tl.load(Q + b * sqb + h * sqh + im[:, None] * sqm + offs_d[None, :], mask=io, other=0.0)
    do = tl.load(DO + b * sdob + h * sdoh + im[:, None] * sdom + offs_d[None, :], mask=io, other=0.0)
    if UPCAST:
        q, do = q.to(tl.float32), do.to(tl.float32)
    stat = (b * H + h) * nq_phys + im
    if STATS:
        o = tl.load(O + b * sob + h * soh + im[:, None] * som + offs_d[None, :], mask=io, other=0.0)
        lse_in = tl.load(LSE_IN + b * slb + h * slh + im * slm, mask=rows_ok, other=float("-inf"))
        if HAS_DLSE:
            dlse = tl.load(DLSE + b * sgb + h * sgh + im * sgm, mask=rows_ok, other=0.0)
        else:
            dlse = lse_in
        delta, lse = row_stats(o, do, lse_in, dlse, HAS_DLSE)
        tl.store(DELTA + stat, delta, mask=rows_ok)
        tl.store(LSE + stat, lse, mask=rows_ok)
    else:
        lse = tl.load(LSE + stat, mask=rows_ok, other=float("inf"))
        delta = tl.load(DELTA + stat, mask=rows_ok, other=0.0)
    Kh = K + b * skb + kvh * skh
    Vh = V + b * svb + kvh * svh
    dq = tl.zeros([BM, DP], dtype=tl.float32)
    row = (h * GT // H) * rows + qb
    # the row's plan blocks, BN keys at a time (as in _dkdv_program); a step past nk (last block)
    # reads zero keys and values, and its probabilities are masked to 0
    {dq_masked}
    {dq_full}
    dq = dq * sm_scale
    if slot < 0:
        dq_ptr = DQ + b * sdqb + h * sdqh + im[:, None] * sdqm + offs_d[None, :]
        if ACCUM:
            if _in_groups(add_groups, grp):
                dq += tl.load(dq_ptr, mask=io, other=0.0).to(tl.float32)
        tl.store(dq_ptr, dq.to(DQ.dtype.element_ty), mask=io)
    else:
        part = BUF + ((bh * n_slots + slot) * BM + tl.arange(0, BM)[:, None]) * DP + offs_d[None, :]
        tl.atomic_add(part, dq, sem="relaxed")

@triton.jit
def _in_groups(mask, grp):
    # group ``grp``'s bit of a launch's group mask (``runtime.writes``). Masks name groups
    # 0..30 one by one; with more groups a mask is 0 or -1 (all), so the bit taken mod 32 is exact
    return ((mask >> (grp % 32)) & 1) != 0


@triton.jit
def _kv_group(bh, HKV, H, G):
    # the head group of the KV head of ``bh``: skip masks are per KV head (the runtime sets a bit
    # only where each KV head's query heads lie in one group), read at its first query head
    return (bh % HKV) * (H // HKV) * G // H


@triton.jit
def _item2(HEADS_FAST: tl.constexpr):
    # (work item, batch x head) of a 3-D grid program
    if HEADS_FAST:
        return tl.program_id(1), tl.program_id(0)
    return tl.program_id(0), tl.program_id(1)


@triton.jit
def _item(p, items, heads, HEADS_FAST: tl.constexpr):
    # program p's (work item, batch x head): heads fastest when tiles are split (every head's long
    # chunks start in the first wave), else items fastest (neighbours share one head's data in L2)
    if HEADS_FAST:
        return p // heads, p % heads
    return p % items, p // items


@triton.jit
def dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, BUF, NUM, IDX, FNUM, FIDX, ITEMS{targs},
                sm_scale, qk_scale,
                sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom,
                sdkb, sdkh, sdkn, sdvb, sdvh, sdvn,
                nq, nk, H, HKV, G, GT, rows, idx_w, fidx_w, n_slots,
                res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
                BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                D: tl.constexpr, DP: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
                EVEN_Q: tl.constexpr = False, RES: tl.constexpr = False, ACCUM: tl.constexpr = False,
                HEADS_FAST: tl.constexpr = False, HAS_PARTIAL: tl.constexpr = True,
                HAS_FULL: tl.constexpr = True):
    # dK / dV alone (large grids, where one body per kernel runs faster than bwd_kernel's two):
    # grid (items, batch x KV heads, classes), or heads first with HEADS_FAST (split tiles:
    # every head's chunks start in the first wave); work items vary fastest otherwise (residue
    # classes fastest lost 1-3% on every gathered pattern: benchmarks/RESULTS.md, session 17)
    it, bh = _item2(HEADS_FAST)
    if not _in_groups(skip_groups, _kv_group(bh, HKV, H, G)):
        _dkdv_program(Q, K, V, DO, LSE, DELTA, DK, DV, BUF, NUM, IDX, FNUM, FIDX, ITEMS + it * 4, bh,
                      tl.program_id(2){targs}, sm_scale, qk_scale,
                      sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom,
                      sdkb, sdkh, sdkn, sdvb, sdvh, sdvn,
                      nq, nk, H, HKV, G, GT, rows, idx_w, fidx_w, n_slots,
                      res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
                      BLOCK_Q, BLOCK_K, BM, BN, D, DP, PREC, UPCAST, EVEN_Q, RES, ACCUM, HAS_PARTIAL,
                      HAS_FULL)


@triton.jit
def dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, BUF, NUM, IDX, FNUM, FIDX, ITEMS{targs},
              sm_scale, qk_scale,
              sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom, sdqb, sdqh, sdqm,
              nq, nk, H, HKV, G, GT, rows, idx_w, fidx_w, n_slots,
              res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
              O, LSE_IN, DLSE, sob, soh, som, slb, slh, slm, sgb, sgh, sgm,
              BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
              D: tl.constexpr, DP: tl.constexpr, EVEN_K: tl.constexpr, PREC: tl.constexpr,
              UPCAST: tl.constexpr, RES: tl.constexpr = False,
              ACCUM: tl.constexpr = False, HEADS_FAST: tl.constexpr = False,
              HAS_PARTIAL: tl.constexpr = True, HAS_FULL: tl.constexpr = True,
              STATS: tl.constexpr = False, HAS_DLSE: tl.constexpr = False):
    # dQ alone, laid out as dkdv_kernel
    it, bh = _item2(HEADS_FAST)
    if not _in_groups(skip_groups, (bh % H) * G // H):
        _dq_program(Q, K, V, DO, LSE, DELTA, DQ, BUF, NUM, IDX, FNUM, FIDX, ITEMS + it * 4, bh,
                    tl.program_id(2){targs}, sm_scale, qk_scale,
                    sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom, sdqb, sdqh, sdqm,
                    nq, nk, H, HKV, G, GT, rows, idx_w, fidx_w, n_slots,
                    res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
                    O, LSE_IN, DLSE, sob, soh, som, slb, slh, slm, sgb, sgh, sgm,
                    BLOCK_Q, BLOCK_K, BM, BN, D, DP, EVEN_K, PREC, UPCAST, RES, ACCUM, HAS_PARTIAL, HAS_FULL,
                    STATS, HAS_DLSE)


@triton.jit
def bwd_kernel(Q, K, V, DO, LSE, DELTA, DQ, DK, DV, KBUF, QBUF,
               KNUM, KIDX, KFNUM, KFIDX, KITEMS, QNUM, QIDX, QFNUM, QFIDX, QITEMS{targs},
               sm_scale, qk_scale,
               sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom,
               sdqb, sdqh, sdqm, sdkb, sdkh, sdkn, sdvb, sdvh, sdvn,
               nq, nk, H, HKV, G, GT, k_rows, k_idx_w, k_fidx_w, k_slots, k_items, k_heads, k_programs,
               q_rows, q_idx_w, q_fidx_w, q_slots, q_items, q_heads,
               res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
               BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BM1: tl.constexpr, BN1: tl.constexpr,
               BM2: tl.constexpr, BN2: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, PREC: tl.constexpr,
               UPCAST: tl.constexpr, EVEN_Q: tl.constexpr = False, EVEN_K: tl.constexpr = False,
               RES: tl.constexpr = False, ACCUM_KV: tl.constexpr = False, ACCUM_Q: tl.constexpr = False,
               K_HEADS_FAST: tl.constexpr = False, Q_HEADS_FAST: tl.constexpr = False,
               K_PARTIAL: tl.constexpr = True, K_FULL: tl.constexpr = True,
               Q_PARTIAL: tl.constexpr = True, Q_FULL: tl.constexpr = True):
    # programs [0, k_programs) compute dK / dV (work items over key tiles), the rest dQ (over query
    # tiles): one launch for both, so that dQ's programs fill the GPU while dK / dV's last ones
    # run (small grids; large ones run dkdv_kernel and dq_kernel); grid axis 1 is the residue class
    p = tl.program_id(0)
    res_c = tl.program_id(1)
    if p < k_programs:
        it, bh = _item(p, k_items, k_heads, K_HEADS_FAST)
        if not _in_groups(skip_groups, _kv_group(bh, HKV, H, G)):
            _dkdv_program(Q, K, V, DO, LSE, DELTA, DK, DV, KBUF, KNUM, KIDX, KFNUM, KFIDX,
                          KITEMS + it * 4, bh, res_c{targs}, sm_scale, qk_scale,
                          sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom,
                          sdkb, sdkh, sdkn, sdvb, sdvh, sdvn,
                          nq, nk, H, HKV, G, GT, k_rows, k_idx_w, k_fidx_w, k_slots,
                          res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
                          BLOCK_Q, BLOCK_K, BM1, BN1, D, DP, PREC, UPCAST, EVEN_Q, RES, ACCUM_KV,
                          K_PARTIAL, K_FULL)
    else:
        it, bh = _item(p - k_programs, q_items, q_heads, Q_HEADS_FAST)
        if not _in_groups(skip_groups, (bh % H) * G // H):
            _dq_program(Q, K, V, DO, LSE, DELTA, DQ, QBUF, QNUM, QIDX, QFNUM, QFIDX, QITEMS + it * 4, bh,
                        res_c{targs}, sm_scale, qk_scale,
                        sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom, sdqb, sdqh, sdqm,
                        nq, nk, H, HKV, G, GT, q_rows, q_idx_w, q_fidx_w, q_slots,
                        res_r, res_u0, res_off, nq_phys, nk_phys, skip_groups, add_groups,
                        Q, LSE, LSE, 0, 0, 0, 0, 0, 0, 0, 0, 0,  # statistics from the preprocess
                        BLOCK_Q, BLOCK_K, BM2, BN2, D, DP, EVEN_K, PREC, UPCAST, RES, ACCUM_Q,
                        Q_PARTIAL, Q_FULL, False, False)
'''


def _pattern_source(node: ir.Node, groups: int) -> tuple[str, tuple[predicate.TableArg, ...]]:
    """``_pattern(p, j, i, grp, nq, nk, tables...)``: the predicate, one branch per head group.

    Key and row bounds are added here (the emitter leaves them out); only the taken branch of
    the ``grp`` chain runs, so a ``heads(...)`` pattern costs one predicate per tile.
    """
    preds = [predicate.emit(ir.select_head(node, g, groups), table_prefix=f"tab{g}_") for g in range(groups)]
    tables = tuple(t for pr in preds for t in pr.tables)
    params = "".join(f", {t.name}" for t in tables)
    lines = ["@triton.jit", f"def _pattern(p, j, i, grp, nq, nk{params}):",
             "    inb = (j < nk) & (i < nq)"]
    if groups == 1:
        lines.append(f"    return inb & {preds[0].expr}")
    else:
        for g, pr in enumerate(preds):
            head = "if" if g == 0 else ("elif" if g < groups - 1 else "else")
            cond = f" grp == {g}" if head != "else" else ""
            lines += [f"    {head}{cond}:", f"        keep = inb & {pr.expr}"]
        lines.append("    return keep")
    return "\n".join(lines) + "\n", tables


_DKDV_STEP = """dk, dv = _dkdv_tile(dk, dv, k, v, Qh, DOh, LSEh, DELTAh, qb * BLOCK_Q + s, offs_n, offs_d,
                    sqm, sdom, nq, nk, grp, qk_scale{tnames},
                    res_c, res_r, res_u0, res_off, nq_phys,
                    BM=BM, D=D, DP=DP, MASKED={masked}, PREC=PREC, UPCAST=UPCAST, RES=RES,
                    EVEN_Q=EVEN_Q)"""
_DQ_STEP = """dq = _dq_tile(dq, q, do, lse, delta, Kh, Vh, kb * BLOCK_K + s, offs_m, offs_d, skn, svn,
              nq, nk, grp, qk_scale{tnames}, res_c, res_r, nk_phys,
              BN=BN, D=D, DP=DP, MASKED={masked}, EVEN_K=EVEN_K, PREC=PREC, UPCAST=UPCAST, RES=RES)"""


def _step_loop(step: str, block_var: str, block: str, size: str, full: bool, steps: int,
               indent: int) -> str:
    """The loop of one program over its row's plan blocks (chunk entries ``c0, c0 + nc, ...`` of
    the ``NUM`` / ``IDX`` tables, ``FNUM`` / ``FIDX`` for FULL ones), ``size`` rows or keys per
    step inside each ``block``. ``steps`` (``BackwardConfig.steps``): 0 unrolls a block's steps,
    1 rolls them into an inner loop, 2 runs one flat loop over every step of the row, as
    FlexAttention does (one software pipeline across blocks). The constexpr ``HAS_PARTIAL`` /
    ``HAS_FULL`` leave out the loop of a kind that the plan's tables do not list."""
    f = "F" if full else ""
    num, idx, width = f"{f}NUM", f"{f}IDX", f"{f.lower()}idx_w"
    body = step.replace("{masked}", str(not full))
    if steps == FLAT:
        per = f"({block} // {size})"
        head = [f"for u in range(0, tl.cdiv(tl.load({num} + row) - c0, nc) * {per}):",
                f"    {block_var} = tl.load({idx} + row * {width} + c0 + u // {per} * nc)",
                f"    s = u % {per} * {size}"]
        inner = textwrap.indent(body, "    ")
    else:
        kind = "range" if steps == ROLLED else "tl.static_range"
        head = [f"for t in range(c0, tl.load({num} + row), nc):",
                f"    {block_var} = tl.load({idx} + row * {width} + t)",
                f"    for s in {kind}(0, {block}, {size}):"]
        inner = textwrap.indent(body, "        ")
    # a plan without entries of this kind compiles without the loop: an empty loop still costs
    # registers the other loop spills for (``block_local`` D=128 backward: 0.509 -> 0.466 ms)
    loop = textwrap.indent("\n".join([*head, inner]), "    ")
    guard = "HAS_FULL" if full else "HAS_PARTIAL"
    return textwrap.indent(f"if {guard}:\n{loop}", " " * indent).lstrip()


def generate(node: ir.Node, groups: int, steps: int = UNROLLED) -> tuple[str, tuple[predicate.TableArg, ...]]:
    """The Triton source of the ``dkdv_kernel`` and ``dq_kernel`` of a concrete pattern.

    ``node`` must be concrete (``ir.concretize``); the source depends only on it and on ``steps``
    (``BackwardConfig.steps``; tile sizes, dtypes and head dim are constexpr arguments that Triton
    specializes).
    """
    pattern_fn, tables = _pattern_source(node, groups)
    names = [t.name for t in tables]
    targs = "".join(f", {n}" for n in names)
    loops = {"dkdv_masked": _step_loop(_DKDV_STEP, "qb", "BLOCK_Q", "BM", False, steps, 8),
             "dkdv_full": _step_loop(_DKDV_STEP, "qb", "BLOCK_Q", "BM", True, steps, 8),
             "dq_masked": _step_loop(_DQ_STEP, "kb", "BLOCK_K", "BN", False, steps, 4),
             "dq_full": _step_loop(_DQ_STEP, "kb", "BLOCK_K", "BN", True, steps, 4)}
    body = _KERNELS
    for name, text in loops.items():
        body = body.replace("{" + name + "}", text)
    body = body.replace("{targs}", targs).replace("{tnames}", targs)
    source = _HEADER.format(sap=node.sap().replace('"', "'")) + predicate.PRELUDE + "\n\n" + pattern_fn + body
    return source, tables


@triton.jit
def row_stats(o, do, lse, dlse, HAS_DLSE: tl.constexpr):
    """Per row: ``delta = rowsum(dO * O) - dLSE`` and ``LSE * log2(e)``, ``+inf`` where the LSE is
    ``-inf`` (a row without keys). Shared by ``preprocess_kernel`` and the dQ programs (``STATS``)."""
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    if HAS_DLSE:
        delta -= dlse.to(tl.float32)
    lse = lse.to(tl.float32)
    return delta, tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)


@triton.jit
def preprocess_kernel(O, DO, LSE, DLSE, DELTA, LSE2, sob, soh, som, sdob, sdoh, sdom, slb, slh, slm,
                      sgb, sgh, sgm, nq, H,
                      BM: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, HAS_DLSE: tl.constexpr):
    """``delta = rowsum(dO * O) - dLSE`` and ``lse2 = LSE * log2(e)``, ``+inf`` on rows without keys.

    A gradient reaching the LSE output adds ``P * dLSE`` to ``dS = P * (dP - delta)``: folding it
    into ``delta`` leaves the generated kernels unchanged.
    """
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    offs_m = pid * BM + tl.arange(0, BM)
    offs_d = tl.arange(0, DP)
    rows = offs_m < nq
    io = rows[:, None] & (offs_d[None, :] < D)
    o = tl.load(O + b * sob + h * soh + offs_m[:, None] * som + offs_d[None, :], mask=io, other=0.0)
    do = tl.load(DO + b * sdob + h * sdoh + offs_m[:, None] * sdom + offs_d[None, :], mask=io, other=0.0)
    lse = tl.load(LSE + b * slb + h * slh + offs_m * slm, mask=rows, other=0.0)
    dlse = lse
    if HAS_DLSE:
        dlse = tl.load(DLSE + b * sgb + h * sgh + offs_m * sgm, mask=rows, other=0.0)
    delta, lse2 = row_stats(o, do, lse, dlse, HAS_DLSE)
    tl.store(DELTA + bh * nq + offs_m, delta, mask=rows)
    tl.store(LSE2 + bh * nq + offs_m, lse2, mask=rows)
