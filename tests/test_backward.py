"""Backward kernels against the reference's autograd (float64), on Triton's interpreter in CI.

These tests feed the kernels the reference forward (output and LSE) and a plan classified from
the dense mask, so they test the backward alone; test_backward_autograd.py runs the whole path.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from patternc import ir
from patternc.codegen.backward import FLAT, ROLLED, BackwardConfig, generate
from patternc.runtime.backward import backward
from patternc.runtime.launch import Prepared

from .strategies import lengths, patterns
from .test_backward_support import assert_close, dense_plan, dq_statistics_only, ref_forward, ref_grads

rb = importlib.import_module("patternc.runtime.backward")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# plan blocks of 32 with 16-wide tiles: every loop over sub-tiles runs more than once
SUBTILED = BackwardConfig(32, 32, 16, 16, 16, 16)
SMALL = BackwardConfig(16, 16, 16, 16, 16, 16)
# every tile listing more than one block is split over programs (atomic float32 partial sums)
SPLIT = BackwardConfig(32, 32, 16, 16, 16, 16, chunk=1)


def check(node: ir.Node, B: int, H: int, HKV: int, nq: int, nk: int, D: int, dtype: torch.dtype,
          config: BackwardConfig = SMALL, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Run the kernels with a dense plan and compare dQ, dK, dV with the reference."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, nq, D, generator=g).to(dtype)
    k = torch.randn(B, HKV, nk, D, generator=g).to(dtype)
    v = torch.randn(B, HKV, nk, D, generator=g).to(dtype)
    do = torch.randn(B, H, nq, D, generator=g).to(dtype)
    scale = 1.0 / math.sqrt(D)
    out, lse = ref_forward(q, k, v, node, scale)
    plan = dense_plan(node, nq, nk, config.block_q, config.block_k)
    got = backward(q, k, v, out, lse, do, node, scale, plan=plan, config=config)
    want = ref_grads(q, k, v, do, node, scale)
    for a, b, name in zip(got, want, ("dq", "dk", "dv")):
        assert a.dtype == dtype and a.shape == b.shape
        assert_close(a, b, dtype, f"{name} of {node} (nq={nq}, nk={nk}, H={H}, HKV={HKV}, {dtype})")
    return got


@st.composite
def head_shapes(draw: st.DrawFn, groups: int) -> tuple[int, int]:
    """``(H, HKV)`` with ``groups | H`` and ``HKV | H`` (GQA ratios 1, 2, 4)."""
    H = groups * draw(st.sampled_from([1, 2]) if groups <= 2 else st.just(1))
    HKV = draw(st.sampled_from([d for d in (1, 2, 4) if H % d == 0 and d <= H]))
    return H, HKV


@settings(max_examples=30)
@given(patterns(heads=True, max_leaves=5), lengths(max_n=40), st.data())
def test_gradients_match_reference(node: ir.Node, nqk: tuple[int, int], data: st.DataObject) -> None:
    groups = ir.head_counts(node)
    assume(groups <= 4)
    H, HKV = data.draw(head_shapes(groups))
    nq, nk = nqk
    dtype = data.draw(st.sampled_from(DTYPES))
    D = data.draw(st.sampled_from([16, 24]))
    config = data.draw(st.sampled_from([SMALL, SUBTILED, SPLIT]))
    B = data.draw(st.integers(1, 2))
    rb._FUSED = data.draw(st.sampled_from([None, False]))  # small grids: None is one launch
    # two launches: dQ computes the row statistics (DQ_STATS), or a preprocess launch does
    rb.DQ_STATS = data.draw(st.booleans())
    try:
        check(node, B, H, HKV, nq, nk, D, dtype, config, seed=data.draw(st.integers(0, 9)))
    finally:
        rb._FUSED = None
        rb.DQ_STATS = True


def test_empty_rows_and_unseen_keys_get_zero_gradients() -> None:
    # rows 3..8 see nothing, key 20 is seen by no query: exact zeros, no NaN
    node = (ir.Band(2) - ir.Rows(ir.TokenList.of(ir.Range(3, 9)))) - ir.Cols(ir.TokenList.of(20))
    dq, dk, dv = check(node, 1, 2, 1, 37, 37, 16, torch.float16)
    assert (dq[:, :, 3:9] == 0).all()
    assert (dk[:, :, 20] == 0).all() and (dv[:, :, 20] == 0).all()


def test_empty_pattern_gives_zero_gradients() -> None:
    dq, dk, dv = check(ir.Empty(), 1, 2, 2, 20, 20, 16, torch.float32)
    assert not dq.any() and not dk.any() and not dv.any()


def test_more_queries_than_keys() -> None:
    # nq > nk: positions p = i + nk - nq are negative for the first rows
    check(ir.Causal() | ir.Blocks(5), 1, 2, 1, 40, 21, 16, torch.float32, SUBTILED)


@pytest.mark.parametrize("D", [32, 96])
def test_head_dims_are_padded(D: int) -> None:
    check(ir.Band(5) | ir.Global(ir.TokenList.of(0, 1)), 1, 2, 1, 33, 33, D, torch.float16)


def test_gqa_with_head_patterns() -> None:
    # 4 query heads over 2 KV heads, each KV head shared by heads of different patterns
    node = ir.Heads((ir.Causal(), ir.Band(3), ir.Strided(4), ir.Random(3, seed=2)))
    check(node, 2, 4, 2, 29, 35, 16, torch.float32, SUBTILED)
    check(node, 1, 4, 1, 35, 35, 16, torch.bfloat16, SPLIT)


def test_split_heavy_rows_and_columns() -> None:
    # global rows and columns: the heavy tiles of both kernels are split into chunks of 2 blocks
    node = ir.Band(3) | ir.Global(ir.TokenList.of(0, 40)) | ir.Rows(ir.TokenList.of(ir.Range(60, 64)))
    check(node, 1, 2, 1, 70, 70, 16, torch.float16, BackwardConfig(16, 16, 16, 16, 16, 16, chunk=2))
    check(node, 1, 4, 2, 50, 70, 24, torch.float32, SPLIT)


@pytest.mark.parametrize(("fused", "stats"), [(True, True), (False, True), (False, False)])
def test_lse_gradient_is_folded_into_delta(monkeypatch: pytest.MonkeyPatch, fused: bool, stats: bool) -> None:
    # d(sum(w * lse))/dq through the kernels equals the reference's, whichever launch computes delta
    monkeypatch.setattr(rb, "_FUSED", fused)
    monkeypatch.setattr(rb, "DQ_STATS", stats)
    node = ir.Band(3) | ir.Cols(ir.TokenList.of(0))
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 24, 16, generator=g) for _ in range(3))
    do = torch.randn(1, 2, 24, 16, generator=g)
    w = torch.randn(1, 2, 24, generator=g)
    scale = 0.25
    out, lse = ref_forward(q, k, v, node, scale)
    got = backward(q, k, v, out, lse, do, node, scale, plan=dense_plan(node, 24, 24, 16, 16), config=SMALL,
                   dlse=w)
    qq, kk, vv = (t.double().requires_grad_() for t in (q, k, v))
    from patternc.reference import attention as ref_attention

    m = node.mask(24)
    s = (qq @ kk.transpose(-1, -2) * scale).masked_fill(~m, -math.inf)
    loss = (ref_attention(qq, kk, vv, node, scale) * do.double()).sum() + (torch.logsumexp(s, -1) * w).sum()
    want = torch.autograd.grad(loss, (qq, kk, vv))
    for a, b, name in zip(got, want, ("dq", "dk", "dv")):
        assert_close(a, b, torch.float32, name)


def test_dq_launch_computes_the_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    # two launches per step and DQ_STATS: no preprocess launch; each step's dQ launch runs first,
    # computes delta and the base-2 LSE, and its dK/dV launch reads them
    ran: list[tuple[str, bool]] = []

    class Spy(Prepared):
        def __call__(self, tensors: Any) -> None:
            ran.append((self.launcher.fn.__name__, bool(self.kwargs.get("STATS"))))
            super().__call__(tensors)

    monkeypatch.setattr(rb, "Prepared", Spy)
    dq_statistics_only(monkeypatch)
    check(ir.Band(3) | ir.Global(ir.TokenList.of(0)), 2, 4, 2, 45, 50, 16, torch.bfloat16, SPLIT)
    assert ran == [("dq_kernel", True), ("dkdv_kernel", False)]


def test_generated_source_is_readable_and_specialized() -> None:
    src, tables = generate(ir.Band(4) | ir.Random(2), 1)
    kernels = ("bwd_kernel", "dkdv_kernel", "dq_kernel", "_dkdv_program", "_dq_program")
    assert all(f"def {f}(" in src for f in kernels)
    assert "band(4) | random(2)" in src
    assert "(j >= p - 4)" in src and len(tables) == 1
    src2, _ = generate(ir.Heads((ir.Band(4), ir.Causal())), 2)
    assert "if grp == 0:" in src2 and "else:" in src2


def test_schedule_splits_only_heavy_tiles() -> None:
    from patternc.lower import lower
    from patternc.runtime.backward import schedule

    # 64 key blocks of 16: query block 0 (global row) lists all of them, the band 2 or 3; a split
    # would gain fewer than MIN_SPLIT_GAIN blocks, so the row runs whole
    short = lower(ir.Band(3) | ir.Rows(ir.TokenList.of(0)), 1024, 1024, block_q=16, block_k=16)
    assert schedule(short.forward, 16, 16, 1024, 0).n_slots == 0
    # 256 key blocks: the global row is long enough to split
    plan = lower(ir.Band(3) | ir.Rows(ir.TokenList.of(0)), 4096, 4096, block_q=16, block_k=16)
    s = schedule(plan.forward, 16, 16, 4096, 0)
    items = s.items.numpy()
    heavy = items[items[:, 0] == 0]
    assert s.n_slots == 1 and len(heavy) == heavy[0, 2] > 1 and (heavy[:, 3] == 0).all()
    assert sorted(heavy[:, 1].tolist()) == list(range(len(heavy)))
    assert (items[items[:, 0] != 0][:, 2:] == [1, -1]).all()
    assert sorted(set(items[:, 0].tolist())) == list(range(256))
    assert s.rows.tolist() == list(range(16)) and s.sel.tolist() == list(range(16))
    # the split tiles' buffer rows are always a prefix (runtime/backward.py slices instead of gathering)
    for n in (1000, 1009):  # the last tile is short; global row / column n - 1 makes it heavy
        p = lower(ir.Band(3) | ir.Global(ir.TokenList.of(0, n - 1)), n, n, block_q=16, block_k=16)
        for table in (p.forward, p.backward):
            sk = schedule(table, 16, 16, n, 2)
            assert sk.n_slots >= 2 and sk.sel.tolist() == list(range(len(sk.sel)))
            assert sk.rows.max() == n - 1
    # heaviest first: a chunk of the global row (8 blocks at most) precedes the band's tiles
    assert items[0, 0] == 0


@pytest.mark.parametrize("fused", [True, False])
def test_fused_and_separate_launches(monkeypatch: pytest.MonkeyPatch, fused: bool) -> None:
    # one launch of bwd_kernel for dK / dV and dQ programs, or dkdv_kernel then dq_kernel: the
    # same gradients; GQA, split tiles of both kinds and a partial last block exercise the indexings
    monkeypatch.setattr(rb, "_FUSED", fused)
    node = ir.Band(3) | ir.Global(ir.TokenList.of(0, 40))
    check(node, 2, 4, 2, 50, 70, 16, torch.float32, SPLIT)
    check(node, 1, 4, 1, 45, 45, 16, torch.float16, SUBTILED)


@pytest.mark.parametrize(("fused", "steps"), [(True, ROLLED), (False, ROLLED), (True, FLAT), (False, FLAT)])
def test_rolled_and_flat_steps_match_the_reference(monkeypatch: pytest.MonkeyPatch, fused: bool,
                                                   steps: int) -> None:
    # BackwardConfig.steps: the steps inside a plan block as a loop, or one loop over the row's
    # steps (2 steps of 16 per 32-block); split tiles (chunk=1) and a partial last block included
    monkeypatch.setattr(rb, "_FUSED", fused)
    node = ir.Band(3) | ir.Global(ir.TokenList.of(0, 40))
    cfg = BackwardConfig(32, 32, 16, 16, 16, 16, chunk=1, steps=steps)
    check(node, 1, 4, 2, 50, 70, 16, torch.float32, cfg)
    want = "for s in range(0, BLOCK_Q, BM)" if steps == ROLLED else "s = u % (BLOCK_Q // BM) * BM"
    assert want in generate(node, 1, steps)[0]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(("node", "full"), [(ir.Blocks(32), True), (ir.Band(0), False)],
                         ids=["full-tiles-only", "partial-tiles-only"])
def test_plans_of_one_tile_kind(monkeypatch: pytest.MonkeyPatch, fused: bool, node: ir.Node,
                                full: bool) -> None:
    # HAS_PARTIAL / HAS_FULL (K_* / Q_* in one launch) compile a kernel without the loop of the
    # kind the plan does not list; the gradients must not change
    monkeypatch.setattr(rb, "_FUSED", fused)
    plan = dense_plan(node, 64, 64, 16, 16)
    for tables in (plan.forward, plan.backward):
        assert (tables.has_full, tables.has_partial) == (full, not full)
    check(node, 1, 2, 1, 64, 64, 16, torch.float32, BackwardConfig(16, 16, 16, 16, 16, 16))


def test_dq_kernel_takes_its_own_warps_and_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    # dq_warps / dq_stages reach the dQ launch; one launch of both kinds takes the smaller of each
    seen: dict[str, tuple[Any, Any]] = {}
    real = Prepared.__call__

    def spy(site: Prepared, tensors: Any) -> None:
        kw = site.kwargs
        seen[getattr(site.launcher.fn, "__name__", "")] = (kw.get("num_warps"), kw.get("num_stages"))
        real(site, tensors)

    monkeypatch.setattr(Prepared, "__call__", spy)
    cfg = BackwardConfig(32, 32, 16, 16, 16, 16, num_warps=8, num_stages=3, dq_warps=4, dq_stages=2)
    node = ir.Band(3) | ir.Global(ir.TokenList.of(0))
    two, one = {"dkdv_kernel": (8, 3), "dq_kernel": (4, 2)}, {"bwd_kernel": (4, 2)}
    for fused, want in ((False, two), (True, one)):
        monkeypatch.setattr(rb, "_FUSED", fused)
        seen.clear()
        check(node, 1, 2, 1, 40, 40, 16, torch.float32, cfg)
        assert {k: v for k, v in seen.items() if k in want} == want


def test_small_grids_take_one_launch() -> None:
    # the smaller kind's programs, times residue classes, decide (runtime.backward.FUSE_MAX_PROGRAMS)
    limit = rb.FUSE_MAX_PROGRAMS
    assert rb._fused(limit, 10 * limit, 1) and rb._fused(10 * limit, 64, 32)
    assert not rb._fused(limit + 1, limit + 1, 1) and not rb._fused(limit, limit, 2)


def _call_inputs(node: ir.Node, H: int, HKV: int, nq: int, nk: int, seed: int,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, H, nq, 16, generator=g).to(dtype)
    k, v = (torch.randn(1, HKV, nk, 16, generator=g).to(dtype) for _ in range(2))
    do = torch.randn(1, H, nq, 16, generator=g).to(dtype)
    out, lse = ref_forward(q, k, v, node, 0.25)
    return q, k, v, out, lse, do


@settings(max_examples=10)
@given(patterns(heads=True, max_leaves=4), lengths(max_n=40), st.data())
def test_a_repeated_call_replays_the_first_calls_launches(node: ir.Node, nqk: tuple[int, int],
                                                          data: st.DataObject) -> None:
    # a second call of the same key runs from the call cache, without the set-up path, and gives
    # exactly what the full path gives on its inputs
    assume(ir.head_counts(node) <= 4)
    H, HKV = data.draw(head_shapes(ir.head_counts(node)))
    nq, nk = nqk
    dtype = data.draw(st.sampled_from([torch.float32, torch.bfloat16]))
    first = _call_inputs(node, H, HKV, nq, nk, 0, dtype)
    again = _call_inputs(node, H, HKV, nq, nk, 1, dtype)
    dlse = torch.randn(again[4].shape) if data.draw(st.booleans()) else None
    rb._CALLS.clear()
    backward(*first, node, 0.25, dlse=None if dlse is None else torch.randn(dlse.shape))
    want, call = rb._backward(*again, node, 0.25, None, None, dlse, None)
    assert len(rb._CALLS) == (call is not None)  # summary gathers and empty shapes are not cached
    full = rb._backward
    rb._backward = lambda *a: pytest.fail("the full path ran again")  # type: ignore[assignment]
    try:
        got = backward(*again, node, 0.25, dlse=dlse) if call is not None else want
    finally:
        rb._backward = full
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_copied_inputs_or_other_switches_take_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    node = ir.Band(3) | ir.Global(ir.TokenList.of(0))
    q, k, v, out, lse, do = _call_inputs(node, 2, 1, 24, 24, 0)
    rb._CALLS.clear()
    strided = torch.randn(1, 2, 16, 24).transpose(-1, -2)  # not unit-stride in the last dim: copied
    backward(q, k, v, out, lse, strided, node, 0.25)
    assert not rb._CALLS
    backward(q, k, v, out, lse, do, node, 0.25)
    backward(q, k, v, out, lse, do, node, 0.25)
    assert len(rb._CALLS) == 1
    for name, value in (("PATTERNC_RESIDUE", "off"), ("PATTERNC_SUMMARY", "off")):
        monkeypatch.setenv(name, value)  # switches are read on every call: a new key
        backward(q, k, v, out, lse, do, node, 0.25)
    monkeypatch.setattr(rb, "_FUSED", False)
    backward(q, k, v, out, lse, do, node, 0.25)
    monkeypatch.setattr(rb, "DQ_STATS", False)  # two launches after a preprocess: not the cached call
    backward(q, k, v, out, lse, do, node, 0.25)
    assert len(rb._CALLS) == 5
