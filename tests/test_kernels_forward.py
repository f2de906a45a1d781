"""The generated forward kernel against the dense reference (Triton's interpreter on the CPU).

Plans come from two places: ``reference_plan`` classifies blocks from the reference mask (tests
the kernel alone, whatever the lowering does) and ``patternc.lower`` (the library path).
"""

from __future__ import annotations

import importlib
import itertools
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import patternc
from patternc import ir, reference
from patternc.plan import BlockTables, Plan
from patternc.runtime import attention, order, reset
from patternc.runtime.forward import ForwardConfig, forward, predicate_mask, work_items

from .strategies import lengths, patterns

TOL = {torch.float32: 2e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}


def _lists(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCSR lists of a boolean [G, rows, cols] block matrix: counts and padded sorted indices."""
    num = x.sum(-1).to(torch.int32)
    width = max(1, int(num.max()) if num.numel() else 1)
    idx = torch.zeros(*x.shape[:-1], width, dtype=torch.int32)
    for g in range(x.shape[0]):
        for r in range(x.shape[1]):
            nz = x[g, r].nonzero().flatten()
            idx[g, r, : len(nz)] = nz.to(torch.int32)
    return num, idx


def reference_plan(node: ir.Node, nq: int, nk: int, heads: int, bq: int, bk: int) -> Plan:
    """A Plan classified block by block from the dense reference mask (EMPTY / PARTIAL / FULL)."""
    groups = ir.head_counts(node)
    m = reference.mask(node, nq, nk, heads=groups)
    rows, cols = -(-nq // bq), -(-nk // bk)
    pad = torch.zeros(groups, rows * bq, cols * bk, dtype=torch.bool)
    pad[:, :nq, :nk] = m
    valid = torch.zeros(rows * bq, cols * bk, dtype=torch.bool)
    valid[:nq, :nk] = True
    hits = pad.view(groups, rows, bq, cols, bk).sum((2, 4))
    inside = valid.view(rows, bq, cols, bk).sum((1, 3))
    full = hits == inside
    part = (hits > 0) & ~full
    fwd = BlockTables.from_lists(*_lists(part), *_lists(full))
    bwd = BlockTables.from_lists(*_lists(part.transpose(1, 2)), *_lists(full.transpose(1, 2)))
    return Plan(nq, nk, bq, bk, groups, fwd, bwd)


def reference_lse(q: torch.Tensor, k: torch.Tensor, node: ir.Node, scale: float) -> torch.Tensor:
    H, nq = q.shape[1], q.shape[2]
    nk = k.shape[2]
    m = reference.mask(node, nq, nk, heads=H)
    kk = k.double().repeat_interleave(H // k.shape[1], dim=1)
    s = (q.double() @ kk.transpose(-1, -2)) * scale
    return torch.logsumexp(s.masked_fill(~m, float("-inf")), dim=-1)


def check(node: ir.Node, B: int, H: int, Hkv: int, nq: int, nk: int, D: int, dtype: torch.dtype,
          bq: int = 16, bk: int = 16, plan: Plan | str | None = "reference",
          split: int | None = None) -> None:
    gen = torch.Generator().manual_seed(nq * 1000 + nk)
    q = torch.randn(B, H, nq, D, generator=gen).to(dtype)
    k = torch.randn(B, Hkv, nk, D, generator=gen).to(dtype)
    v = torch.randn(B, Hkv, nk, D, generator=gen).to(dtype)
    if plan == "reference":
        plan = reference_plan(node, nq, nk, H, bq, bk)
    cfg = ForwardConfig(bq, bk, split=split)
    out, lse = forward(q, k, v, node, plan=plan, config=cfg)  # type: ignore[arg-type]
    # reference.attention wants heads=None for heads(x) of one part: hand it the head-free tree
    ref = reference.attention(q, k, v, node if ir.head_counts(node) > 1 else ir.select_head(node, 0, 1))
    tol = TOL[dtype]
    assert not out.isnan().any()
    torch.testing.assert_close(out.double(), ref.double(), atol=tol, rtol=tol)
    want = reference_lse(q, k, node, 1 / math.sqrt(D))
    empty = torch.isinf(want)
    assert torch.equal(torch.isinf(lse), empty), "LSE is -inf exactly on rows with no keys"
    assert (out[empty[..., None].expand_as(out)] == 0).all(), "rows with no keys give 0"
    torch.testing.assert_close(lse.double()[~empty], want[~empty], atol=tol, rtol=tol)


@st.composite
def heads_layout(draw: st.DrawFn, node: ir.Node) -> tuple[int, int]:
    """(H, Hkv): H a multiple of the pattern's head groups, Hkv a divisor of H (GQA)."""
    groups = ir.head_counts(node)
    H = groups * draw(st.sampled_from([1, 2]))
    Hkv = H // draw(st.sampled_from([r for r in (1, 2, 4) if H % r == 0]))
    return H, Hkv


@settings(max_examples=40)
@given(patterns(heads=True), st.integers(1, 70), st.integers(1, 70), st.data())
def test_emitted_predicate_is_the_reference_mask(node: ir.Node, nq: int, nk: int,
                                                 data: st.DataObject) -> None:
    heads = ir.head_counts(node) * data.draw(st.sampled_from([1, 2]))
    # nq > nk too: positions go negative and the floor-division helper matters
    got = predicate_mask(node, nq, nk, heads=heads, block=16)
    assert torch.equal(got, reference.mask(node, nq, nk, heads=heads))


@settings(max_examples=25)
@given(patterns(heads=True, max_leaves=5), lengths(max_n=80), st.sampled_from([16, 32, 64, 96]),
       st.sampled_from([torch.float32, torch.float16]), st.sampled_from([(16, 16), (32, 16), (16, 32)]),
       st.integers(1, 2), st.data())
def test_forward_matches_reference(node: ir.Node, nqk: tuple[int, int], D: int, dtype: torch.dtype,
                                   blocks: tuple[int, int], B: int, data: st.DataObject) -> None:
    H, Hkv = data.draw(heads_layout(node))
    nq, nk = nqk
    check(node, B, H, Hkv, nq, nk, D, dtype, *blocks)


@settings(max_examples=15)
@given(patterns(heads=True, max_leaves=4), lengths(max_n=80), st.integers(1, 3), st.data())
def test_split_rows_merge_to_the_reference(node: ir.Node, nqk: tuple[int, int], split: int,
                                           data: st.DataObject) -> None:
    # at most `split` key blocks per program: most rows are split and merged by log-sum-exp
    H, Hkv = data.draw(heads_layout(node))
    check(node, 1, H, Hkv, *nqk, 32, torch.float32, split=split)


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=12), st.integers(1, 5))
def test_work_items_cover_every_block_once(counts: list[tuple[int, int]], split: int) -> None:
    full, part = (np.array(c) for c in zip(*counts))
    items, merge, slots = work_items(full, part, split)
    cost = (items[:, 2] - items[:, 1]) + (items[:, 4] - items[:, 3])
    assert (cost <= split).all()
    # heaviest first where costs spread (runtime.order.SPREAD), else in sequence order
    if cost.max() > order.SPREAD * cost.mean():
        assert (np.diff(cost) <= 0).all()
    else:
        assert (np.diff(items[:, 0]) >= 0).all()
    for qb, (f, p) in enumerate(counts):
        mine = items[items[:, 0] == qb]
        assert sorted(b for lo, hi in mine[:, 1:3] for b in range(lo, hi)) == list(range(f))
        assert sorted(b for lo, hi in mine[:, 3:5] for b in range(lo, hi)) == list(range(p))
        split_row = (mine[:, 5] >= 0).any()
        assert split_row == (f + p > split) and (len(mine) > 1) == split_row
        if split_row:
            (row,) = merge[merge[:, 0] == qb]
            assert sorted(mine[:, 5].tolist()) == list(range(row[1], row[2]))
    assert slots == (items[:, 5] >= 0).sum()


@settings(max_examples=15)
@given(patterns(heads=True, max_leaves=5), lengths(max_n=80), st.sampled_from([(16, 16), (32, 16)]),
       st.data())
def test_forward_with_lowered_plans_matches_reference(node: ir.Node, nqk: tuple[int, int],
                                                      blocks: tuple[int, int], data: st.DataObject) -> None:
    H, Hkv = data.draw(heads_layout(node))
    cfg = ForwardConfig(*blocks)
    nq, nk = nqk
    gen = torch.Generator().manual_seed(nk)
    q = torch.randn(1, H, nq, 32, generator=gen)
    k, v = torch.randn(2, 1, Hkv, nk, 32, generator=gen)
    out, _ = forward(q, k, v, node, config=cfg)
    ref = reference.attention(q, k, v, node if ir.head_counts(node) > 1 else ir.select_head(node, 0, 1))
    torch.testing.assert_close(out, ref, atol=2e-4, rtol=2e-4)


def test_band_global_with_bf16_gqa_and_padded_head_dim() -> None:
    node = ir.Band(5) | ir.Global(ir.TokenList.of(ir.Range(0, 3)))
    check(node, 1, 4, 2, 45, 77, 96, torch.bfloat16, 16, 32)


def test_decode_step_sees_the_last_row() -> None:
    node = (ir.Window(20, 0) | ir.Strided(7) | ir.Random(2, seed=3)) & ir.Causal()
    check(node, 2, 2, 1, 1, 75, 32, torch.float32)


def test_heads_patterns_use_one_predicate_per_group() -> None:
    parts = (ir.Band(2), ir.Causal(), ir.Empty(), ir.RandomBlocks(2, 8))
    node = ir.Heads(parts) & ~ir.Cols(ir.TokenList.of(3))
    check(node, 1, 8, 4, 33, 33, 16, torch.float32)


def test_each_head_group_is_split_by_its_own_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # one launch per head group: the light group (the global row and column alone) cuts its global
    # row finer, to fill the GPU with its own work (cut by the whole pattern's, both groups' rows
    # took the same coarse slices and the light launch ran on a few programs)
    fwd = importlib.import_module("patternc.runtime.forward")
    monkeypatch.setattr(fwd, "FWD_MIN_SPLIT_GAIN", 0)  # split rows at a test's lengths
    monkeypatch.setattr(fwd, "PROGRAMS_PER_SM", 2)  # slices above the 16-block floor at this size
    node = ir.Heads((ir.Band(16), ir.Empty())) | ir.Global(ir.TokenList.of(0))
    launch = fwd._setup(node, 1, 2, 1, 1024, 1024, 16, torch.float32, "cpu", ForwardConfig(16, 16), None)
    longest = [int((w.items[:, 2] - w.items[:, 1] + w.items[:, 4] - w.items[:, 3]).max())
               for w in launch.work]
    assert longest[1] < longest[0]
    check(node, 1, 2, 1, 1024, 1024, 16, torch.float32, plan=None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2048), min_size=1, max_size=64), st.integers(1, 32), st.integers(1, 200),
       st.integers(1, 4))
def test_auto_split_bounds_the_longest_item(rows: list[int], copies: int, sms: int, programs: int) -> None:
    # an item never outlasts its SM's share of the launch by more than the gain not worth a
    # split: split rows' slices hold at most max(16, total / (2 sms)) blocks (programs = 2 is the
    # fallback for launches dominated by heavy rows), unsplit rows at most that plus the gain
    fwd = importlib.import_module("patternc.runtime.forward")
    r = np.array(rows)
    split = fwd._auto_split(r, copies, sms, programs)
    share = max(16, -(-copies * int(r.sum()) // (min(programs, 2) * sms)))
    assert 1 <= split
    assert split <= share or split == max(1, int(r.max()))
    assert max(rows) <= split or split <= share
    assert min(split, max(rows)) <= share + fwd.FWD_MIN_SPLIT_GAIN


def test_auto_split_of_global_rows() -> None:
    # Longformer at 16k tokens (64-token blocks, 16 heads, 132 SMs): light rows fill the SMs four
    # programs deep, so the global row is cut four times finer than one share of the launch;
    # a rest launch made of the global rows alone cuts them twice as coarse; short rows run whole
    fwd = importlib.import_module("patternc.runtime.forward")
    longformer = np.array([256] + [11] * 255)
    assert fwd._auto_split(longformer, 16, 132, 4) == 93
    assert fwd._auto_split(longformer, 16, 132, 2) == 186
    assert fwd._auto_split(np.array([256] + [1] * 255), 16, 132, 4) == 31
    assert fwd._auto_split(np.array([30] + [1] * 63), 16, 132, 4) == 30
    # an H100's 228 KiB hold four D=64 programs (64x64 tiles, 3 stages: 56 KiB), two at D=128
    h100 = 228 * 1024
    assert fwd.programs_per_sm(ForwardConfig(64, 64, 4, 3), 64, 2, h100) == 4
    assert fwd.programs_per_sm(ForwardConfig(64, 64, 4, 2), 128, 2, h100) == 2
    assert fwd.programs_per_sm(ForwardConfig(128, 128, 8, 3), 128, 2, h100) == 1


def test_empty_pattern_gives_zeros_and_minus_inf_lse() -> None:
    q = torch.randn(1, 2, 20, 16)
    out, lse = forward(q, q, q, ir.Empty(), plan=reference_plan(ir.Empty(), 20, 20, 2, 16, 16))
    assert (out == 0).all() and torch.isneginf(lse).all()


def test_full_blocks_skip_the_predicate() -> None:
    # a plan that lists every block as FULL for a causal pattern computes dense attention:
    # proof that FULL blocks never evaluate the predicate
    nq = nk = 32
    dense = reference_plan(ir.Full(), nq, nk, 1, 16, 16)
    q = torch.randn(1, 1, nq, 16)
    out, _ = forward(q, q, q, ir.Causal(), plan=dense)
    torch.testing.assert_close(out, reference.attention(q, q, q, ir.Full()), atol=2e-4, rtol=2e-4)


def test_symbolic_arguments_are_concretized_per_length() -> None:
    node = ir.Band(ir.BinOp("//", ir.N(), 4)) | ir.Prefix(ir.Func("sqrt", (ir.N(),)))
    check(node, 1, 1, 1, 40, 40, 16, torch.float32)
    check(node, 1, 1, 1, 30, 64, 16, torch.float32)


def test_library_path_uses_the_lowering() -> None:
    node = (ir.Band(4) | ir.Global(ir.TokenList.of(0, 1)) | ir.RandomBlocks(1, 16)) & ir.Causal()
    check(node, 1, 2, 1, 50, 70, 32, torch.float16, plan=None)


def test_attention_accepts_text_and_returns_lse() -> None:
    q = torch.randn(1, 2, 24, 32)
    out, lse = attention(q, q, q, "band(3) | global([0])", return_lse=True)
    node = ir.Band(3) | ir.Global(ir.TokenList.of(0))
    torch.testing.assert_close(out, reference.attention(q, q, q, node), atol=2e-4, rtol=2e-4)
    assert lse.shape == (1, 2, 24) and lse.dtype == torch.float32


@pytest.mark.parametrize(("shapes", "message"), [
    (((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8)), "4-D"),
    (((1, 3, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16)), "multiple of the KV heads"),
    (((1, 2, 8, 16), (1, 2, 8, 32), (1, 2, 8, 32)), "head dims differ"),
    (((1, 2, 8, 16), (2, 2, 8, 16), (2, 2, 8, 16)), "batch sizes differ"),
    (((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 9, 16)), "same shape"),
    (((1, 2, 8, 512), (1, 2, 8, 512), (1, 2, 8, 512)), "head_dim"),
])
def test_bad_shapes_are_reported_plainly(shapes: tuple[tuple[int, ...], ...], message: str) -> None:
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=message):
        attention(q, k, v, ir.Causal())


def test_bad_dtypes_and_patterns_are_reported_plainly() -> None:
    x = torch.zeros(1, 1, 8, 16)
    with pytest.raises(TypeError, match="dtype"):
        attention(x.double(), x.double(), x.double(), ir.Causal())
    with pytest.raises(TypeError, match="share one dtype"):
        attention(x, x.half(), x.half(), ir.Causal())
    with pytest.raises(TypeError, match="pattern"):
        attention(x, x, x, 42)
    with pytest.raises(ir.PatternError, match="multiple"):
        attention(torch.zeros(1, 3, 8, 16), x, x, ir.Heads((ir.Causal(), ir.Full())))


def test_zero_length_inputs() -> None:
    q = torch.zeros(1, 1, 0, 16)
    k = torch.zeros(1, 1, 5, 16)
    assert attention(q, k, k, ir.Causal()).shape == (1, 1, 0, 16)
    out, lse = attention(torch.ones(1, 1, 3, 16), q, q, ir.Full(), return_lse=True)
    assert (out == 0).all() and torch.isneginf(lse).all()


def test_generated_source_is_on_disk_and_readable() -> None:
    from patternc.codegen.forward import spec_for
    from patternc.runtime.forward import kernel_module

    spec = spec_for(ir.Band(3) | ir.Random(2), 64, block_q=16, block_k=16, head_dim=64, dtype="float16",
                    gqa=2)
    module, tables = kernel_module(spec)
    text = open(module.__file__).read()
    assert os.path.dirname(module.__file__).endswith("forward")
    assert "band(3) | random(2)" in text and "GQA = tl.constexpr(2)" in text
    assert [t.kind for t in tables] == ["random_keys"] and module.TABLES == (tables[0].name,)


def test_more_queries_than_keys_have_negative_positions() -> None:
    # nq > nk: the first positions are negative; floor division and the lowering must agree
    node = ir.Blocks(5) | ir.RandomBlocks(2, 7) | (ir.Fixed(6, 2) & ~ir.Rows(ir.TokenList.of(-3, 2)))
    check(node, 1, 2, 1, 50, 20, 32, torch.float32, plan=None)
    check(node, 1, 2, 2, 50, 20, 32, torch.float16)


@given(patterns(max_leaves=8), st.integers(0, 40), st.integers(30, 100))
def test_wrapped_predicates_are_the_same_python(node: ir.Node, indent: int, width: int) -> None:
    import ast

    from patternc.codegen.predicate import emit, wrap

    expr = emit(node).expr
    wrapped = wrap(expr, indent, width)
    assert ast.dump(ast.parse(expr)) == ast.dump(ast.parse(wrapped))
    if indent + len(expr) <= width:
        assert wrapped == expr


def test_strided_layouts_are_read_through_their_strides() -> None:
    # [B, N, H, D] storage viewed as [B, H, N, D] (what most models hold), and a sliced head dim
    q = torch.randn(2, 40, 4, 48)[..., :32].transpose(1, 2)
    k = torch.randn(2, 56, 2, 32).transpose(1, 2)
    v = torch.randn(2, 2, 56, 64)[..., ::2]
    node = ir.Band(6) | ir.Cols(ir.TokenList.of(0))
    out = attention(q, k, v, node)
    torch.testing.assert_close(out, reference.attention(q, k, v, node), atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("scale", [0.3, -0.7, 0.0])
def test_any_scale_sign(scale: float) -> None:
    # the kernel applies a positive scale after the row max; the runtime maps negative and zero
    # scales onto that exactly (q -> -q; q -> 0 with scale 1)
    node = ir.Band(5) | ir.Prefix(3)  # a row of every length, and rows with one key
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 2, 40, 16, generator=gen) for _ in range(3))
    out, lse = forward(q, k, v, node, scale, config=ForwardConfig(16, 16))
    m = reference.mask(node, 40, 40)
    s = (q.double() @ k.double().transpose(-1, -2) * scale).masked_fill(~m, float("-inf"))
    torch.testing.assert_close(out.double(), torch.softmax(s, -1) @ v.double(), atol=2e-4, rtol=2e-4)
    torch.testing.assert_close(lse.double(), torch.logsumexp(s, -1), atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("text", ["blocks(64) & causal", "band(40) | global([0, 1])", "causal",
                                  "heads(blocks(32), window(50, 0)) & causal", "window(63, 0) | strided(16)"])
def test_consecutive_blocks_are_computed_and_match_loaded_ones(monkeypatch: pytest.MonkeyPatch,
                                                                text: str) -> None:
    # Work.runs: rows of consecutive key blocks compute them from the WORK row; the same call with
    # every index loaded from the tables gives the same bits
    fwd = importlib.import_module("patternc.runtime.forward")
    node = patternc.pattern(text)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 4, 200, 32) for _ in range(3))
    out = {}
    for on in (True, False):
        monkeypatch.setattr(fwd, "COMPUTED_BLOCKS", on)
        reset()
        out[on] = fwd.forward(q, k, v, node, residue_mode="off")
        launch = fwd._launches(node, 1, 4, 4, 200, 200, 32, torch.float32, "cpu",
                               fwd.default_config(200, 200, 32, torch.float32, True), "off")[0]
        assert any(any(w.runs) for w in launch.work) == on
    reset()
    assert torch.equal(out[True][0], out[False][0]) and torch.equal(out[True][1], out[False][1])
    ref = reference.attention(q, k, v, node)
    torch.testing.assert_close(out[True][0], ref, atol=TOL[torch.float32], rtol=0)


@pytest.mark.parametrize("text", ["(window(63, 0) | strided(16)) & causal", "strided(16) & causal",
                                  "dilated(30, 2) | global([0])"])
def test_residue_launches_compute_their_blocks_and_match_loaded_ones(monkeypatch: pytest.MonkeyPatch,
                                                                     text: str) -> None:
    # gathered launches compute consecutive key blocks too (COMPUTED_BLOCKS), with the same bits
    fwd = importlib.import_module("patternc.runtime.forward")
    node = patternc.pattern(text)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 4, 400, 32) for _ in range(3))
    cfg = fwd.default_config(400, 400, 32, torch.float32, True)
    out = {}
    for on in (True, False):
        monkeypatch.setattr(fwd, "COMPUTED_BLOCKS", on)
        reset()
        out[on] = fwd.forward(q, k, v, node, residue_mode="force")
        launches = fwd._launches(node, 1, 4, 4, 400, 400, 32, torch.float32, "cpu", cfg, "force")
        gathered = [launch for launch in launches if launch.res is not None]
        assert gathered and any(any(w.runs) for launch in gathered for w in launch.work) == on
    reset()
    assert torch.equal(out[True][0], out[False][0]) and torch.equal(out[True][1], out[False][1])
    ref = reference.attention(q, k, v, node)
    torch.testing.assert_close(out[True][0], ref, atol=TOL[torch.float32], rtol=0)


@pytest.mark.parametrize(("text", "mode", "split"), [
    ("blocks(64) & causal", "off", 0), ("band(40) | global([0, 1])", "off", 2),
    ("heads(blocks(32), window(50, 0)) & causal", "off", 0), ("strided(4) & causal", "force", 0),
    ("(window(63, 0) | strided(16)) & causal", "force", 0)])
def test_one_loop_over_both_kinds_matches_a_loop_per_kind(monkeypatch: pytest.MonkeyPatch, text: str,
                                                          mode: str, split: int) -> None:
    # Work.mixed: rows listing FULL and PARTIAL blocks walk them in one loop (ONE_LOOP), with
    # blocks computed or loaded, plain or gathered, whole rows or split ones; the same bits as a
    # loop per kind, and the reference's attention
    fwd = importlib.import_module("patternc.runtime.forward")
    node = patternc.pattern(text)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 4, 300, 32) for _ in range(3))
    cfg = fwd.ForwardConfig(32, 32, split=split or None)  # 32-row blocks: rows of both kinds
    out = {}
    for one, computed in itertools.product((True, False), (True, False)):
        monkeypatch.setattr(fwd, "ONE_LOOP", one)
        monkeypatch.setattr(fwd, "COMPUTED_BLOCKS", computed)
        reset()
        out[one, computed] = fwd.forward(q, k, v, node, config=cfg, residue_mode=mode)
        launches = fwd._launches(node, 1, 4, 4, 300, 300, 32, torch.float32, "cpu", cfg, mode)
        assert any(w.mixed for launch in launches for w in launch.work) == one
    reset()
    first = out[True, True]
    for o, lse in out.values():
        assert torch.equal(o, first[0]) and torch.equal(lse, first[1])
    torch.testing.assert_close(first[0], reference.attention(q, k, v, node), atol=TOL[torch.float32], rtol=0)


def test_one_loop_only_for_short_rows_of_both_kinds_in_small_tiles() -> None:
    # Work.mixed: rows listing both kinds, shorter on average than tiles.LONG_ROWS, in tiles of
    # at most 64x64 (causal's 128x128 tiles keep a loop per kind, at any length)
    fwd = importlib.import_module("patternc.runtime.forward")
    short, one, small = np.array([3, 2, 4]), np.array([1, 1, 0]), fwd.ForwardConfig(64, 64)
    assert fwd._one_loop(short, one, small) is True  # a Python bool: Triton takes no numpy bool
    assert not fwd._one_loop(short, np.zeros(3, dtype=int), small)
    assert not fwd._one_loop(np.zeros(3, dtype=int), one, small)
    assert not fwd._one_loop(np.array([100, 200, 300]), one, small)  # long rows
    assert not fwd._one_loop(short, one, fwd.ForwardConfig(128, 128))  # the dense patterns' tiles
