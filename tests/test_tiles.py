"""The plan-driven tile choice (``patternc.runtime.tiles``) on the host: what it picks where the
H100 measurements say it should, that it never leaves its candidate list, that the interpreter
keeps its tiles, and that every candidate runs correctly (interpreter, against the reference)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import patternc
from patternc import ir, reference
from patternc.codegen import backward as gen_bwd
from patternc.codegen.backward import BackwardConfig
from patternc.runtime import residue, tiles
from patternc.runtime.forward import ForwardConfig

from .strategies import lengths, patterns

fwd = importlib.import_module("patternc.runtime.forward")
bwd = importlib.import_module("patternc.runtime.backward")
ST = patternc.load("patternc/stdlib_patterns/sparse_transformer.sap")
FIXED = ST["sparse_transformer_fixed"]()
SUMMARY = ST["sparse_transformer_summary"]()
BF16 = torch.bfloat16


@pytest.fixture
def on_h100(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the choice is host code: pretend the kernels run on a GPU with Hopper's shared memory
    for mod in (fwd, bwd):
        monkeypatch.setattr(mod, "interpreting", lambda: False)
        monkeypatch.setattr(mod, "large_smem", lambda device: True)
    fwd.dense_config.cache_clear()
    bwd.dense_config.cache_clear()
    yield
    fwd.dense_config.cache_clear()
    bwd.dense_config.cache_clear()


def forward_choice(node: ir.Node, n: int, D: int = 64, H: int = 16) -> ForwardConfig:
    return fwd.dense_config(node, fwd.default_config(n, n, D, BF16, False), n, n, H, D, BF16)


def backward_choice(node: ir.Node, n: int, D: int = 64, H: int = 16) -> BackwardConfig:
    return bwd.dense_config(node, n, n, H, D, BF16) or bwd.gen.default_config(D, False)


@pytest.mark.usefixtures("on_h100")
@pytest.mark.parametrize("node", [FIXED, SUMMARY, ST["sparse_transformer_fixed_heads"]()])
def test_fixed_patterns_get_narrow_key_blocks(node: ir.Node) -> None:
    # a visited summary block holds 8 useful keys of 64: 16-key blocks do the same rows 4x cheaper
    for n, D in ((65536, 64), (16384, 64), (65536, 128)):
        assert forward_choice(node, n, D).block_k in (16, 32)
        assert backward_choice(node, n, D).block_k in (16, 32)


@pytest.mark.usefixtures("on_h100")
@pytest.mark.parametrize("D", [64, 128])
def test_band_keeps_64_and_causal_128(D: int) -> None:
    for n in (4096, 65536):
        band = forward_choice(ir.Band(256), n, D)
        assert (band.block_q, band.block_k) == (64, 64)
        causal = forward_choice(ir.Causal(), n, D)
        assert causal == (fwd.DENSE_D64 if D == 64 else fwd.DENSE_D128)
        # the backward: 64x64 tiles with 64-wide steps (the D=64 rule) for both, at D=128 too
        assert backward_choice(ir.Band(256), n, D) == gen_bwd.WIDE_STEPS
        assert backward_choice(ir.Causal(), n, D) == gen_bwd.WIDE_STEPS


@pytest.mark.usefixtures("on_h100")
@pytest.mark.parametrize("D", [64, 128])
def test_gathered_patterns_keep_the_rule_blocks(D: int) -> None:
    # strided(64) & causal at 4k touches every causal 64x64 block, so its plain plan looks dense;
    # it runs residue-gathered at the rule's blocks, which the dense tiles (128x128) would undo
    for name in ("sparse_transformer_stride", "sparse_transformer_strided"):
        node, n = ST[name](), 4096
        rule = fwd.default_config(n, n, D, BF16, False)
        assert fwd.is_dense(node, n, n, 16, rule.block_q, rule.block_k)
        assert forward_choice(node, n, D) == rule
        assert fwd.dense_config(node, rule, n, n, 16, D, BF16, "cuda", "off") != rule  # not gathered: dense
        cfg = forward_choice(node, n, D)
        gathered = residue.decompose(ir.concretize(node, n), n, n, 16, cfg.block_q, cfg.block_k, "auto")
        assert gathered is not None


def residue_configs(node: ir.Node, n: int, D: int, dtype: torch.dtype = BF16) -> list[ForwardConfig]:
    """The tiles of each residue launch of ``node`` at ``n`` tokens, 16 heads."""
    rule = fwd.default_config(n, n, D, dtype, fwd.interpreting())
    dec = residue.decompose(ir.concretize(node, n), n, n, 16, rule.block_q, rule.block_k, "force")
    assert dec is not None and dec.parts
    return [fwd._residue_config(part, D, dtype) for part in dec.parts]


def whole(cfg: ForwardConfig) -> ForwardConfig:
    """``cfg`` as a residue launch runs it: never split."""
    return dataclasses.replace(cfg, split=1 << 30)


STRIDE = ST["sparse_transformer_stride"]()


@pytest.mark.usefixtures("on_h100")
def test_residue_launches_take_the_head_dims_rule() -> None:
    # many classes of short rows too (256 classes of 256-token causal problems: they walk both
    # kinds of block in one loop, where three stages beat session 12's two), long rows, few
    # classes, D=128, fp32
    dsw = patternc.load("patternc/stdlib_patterns/dilated_sliding_window.sap")
    nodes = [ST[f"sparse_transformer_{name}"]() for name in ("stride", "strided", "strided_heads")]
    nodes += [(ir.Window(127, 0) | ir.Strided(128)) & ir.Causal(), dsw["dilated_sliding_window_causal"]()]
    rule = whole(fwd.default_config(65536, 65536, 64, BF16, False))
    assert rule.num_stages == 3
    for node in nodes:
        assert residue_configs(node, 65536, 64) == [rule]
    for D, dtype in ((128, BF16), (64, torch.float32)):
        expected = whole(fwd.default_config(65536, 65536, D, dtype, False))
        assert residue_configs(STRIDE, 65536, D, dtype) == [expected]


def test_interpreter_residue_launches_keep_their_tiles() -> None:
    assert residue_configs(STRIDE, 4096, 64) == [whole(fwd.default_config(4096, 4096, 64, BF16, True))]


@pytest.mark.usefixtures("on_h100")
def test_short_and_long_rows() -> None:
    # block-local rows are 4 tiles, band(256) 9-10: 32-key blocks at D=128 (rows of 4 tiles
    # only); at D=64 two stages where the rows hold few FULL tiles (block-local causal: 1.5 and a
    # diagonal one), three where they hold at least PIPELINED_ROWS computed ones; Longformer's
    # global rows visit every block; causal is dense (128x128); a 4096-key causal window
    # averages ~64 tiles a row: 128x128 at D=128 only
    bl = patternc.load("patternc/stdlib_patterns/block_local.sap")
    window = patternc.load("patternc/stdlib_patterns/sliding_window.sap")["sliding_window_causal"]()
    longformer = ir.Band(256) | ir.Global(ir.TokenList.of(0, 1, 2))
    for n in (4096, 65536):
        rule = fwd.default_config(n, n, 64, BF16, False)
        for node in (bl["block_local"](), bl["block_local_causal"](), ir.Band(256)):
            few = node == bl["block_local_causal"]()
            assert forward_choice(node, n) == (ForwardConfig(*tiles.ROW_RULES[64][1]) if few else rule)
            short = node != ir.Band(256)
            assert (forward_choice(node, n, D=128) == ForwardConfig(64, 32, 4, 2)) == short
        for D in (64, 128):
            assert forward_choice(longformer, n, D) == fwd.default_config(n, n, D, BF16, False)
        assert forward_choice(ir.Causal(), n) == fwd.DENSE_D64
    for n in (16384, 65536):
        assert forward_choice(window, n) == fwd.default_config(n, n, 64, BF16, False)
        assert forward_choice(window, n, D=128) == fwd.DENSE_D128
    assert forward_choice(ir.Band(1100), 65536) == fwd.default_config(65536, 65536, 64, BF16, False)
    rule256 = fwd.default_config(65536, 65536, 256, BF16, False)
    assert forward_choice(bl["block_local"](), 65536, D=256) == rule256


@pytest.mark.usefixtures("on_h100")
def test_rows_of_loaded_full_tiles_take_two_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    # the three stages of PIPELINED_ROWS need computed FULL blocks: off, or rows whose FULL
    # blocks are not consecutive (random blocks), short rows take two
    bl = patternc.load("patternc/stdlib_patterns/block_local.sap")["block_local"]()
    scattered = ir.Band(256) | ir.RandomBlocks(3, 64)
    two = ForwardConfig(*tiles.ROW_RULES[64][1])
    assert tiles.full_runs(bl, 4096, 4096, 16)
    assert not tiles.full_runs(scattered, 4096, 4096, 16)
    assert tiles.counts(scattered, 4096, 4096, 64, 64, 16).full >= tiles.PIPELINED_ROWS * 64 * 16
    assert forward_choice(scattered, 4096) == two
    assert forward_choice(bl, 4096) != two
    monkeypatch.setattr(fwd, "COMPUTED_BLOCKS", False)
    fwd.dense_config.cache_clear()
    assert forward_choice(bl, 4096) == two


@pytest.mark.usefixtures("on_h100")
def test_backward_short_rows() -> None:
    # block-local causal rows (4 tiles, one of them PARTIAL) take 32-wide steps at D <= 128 (a
    # flat step loop at D=128); block-local rows (FULL tiles only) too at D=64 but not at D=128;
    # long causal windows and Longformer keep 64-wide steps
    bl = patternc.load("patternc/stdlib_patterns/block_local.sap")
    window = patternc.load("patternc/stdlib_patterns/sliding_window.sap")["sliding_window_causal"]()
    for n in (4096, 65536):
        for D in (64, 128):
            short = BackwardConfig(*tiles.BACKWARD_SHORT_ROWS[1][D])
            assert short.steps == (gen_bwd.FLAT if D == 128 else gen_bwd.UNROLLED)
            assert backward_choice(bl["block_local_causal"](), n, D) == short
            want = short if D == 64 else gen_bwd.WIDE_STEPS
            assert backward_choice(bl["block_local"](), n, D) == want
            for node in (window, ir.Band(256) | ir.Global(ir.TokenList.of(0))):
                assert backward_choice(node, n, D) == gen_bwd.WIDE_STEPS
    # D > 128 keeps the head-dim rule (no model there)
    assert bwd.dense_config(bl["block_local_causal"](), 4096, 4096, 16, 256, BF16) is None


@pytest.mark.usefixtures("on_h100")
def test_model_off_keeps_the_rules() -> None:
    tiles.enable(False)
    try:
        assert forward_choice(FIXED, 65536) == fwd.default_config(65536, 65536, 64, BF16, False)
        assert bwd.dense_config(FIXED, 65536, 65536, 16, 64, BF16) is None
    finally:
        tiles.enable(None)  # back to $PATTERNC_TILE_MODEL


def test_interpreter_and_fp32_keep_their_tiles() -> None:
    # no monkeypatching: this machine has no GPU, so the interpreter is on
    assert fwd.interpreting()
    base = fwd.default_config(65536, 65536, 64, BF16, True)
    assert fwd.dense_config(FIXED, base, 65536, 65536, 16, 64, BF16) == base
    assert bwd.dense_config(FIXED, 65536, 65536, 16, 64, BF16) is None
    assert (base.block_q, base.block_k) == (64, 64)


@pytest.mark.usefixtures("on_h100")
def test_fp32_and_large_heads_keep_the_rules() -> None:
    for D, dtype in ((64, torch.float32), (256, BF16)):
        base = fwd.default_config(65536, 65536, D, dtype, False)
        assert fwd.dense_config(FIXED, base, 65536, 65536, 16, D, dtype) == base
        assert bwd.dense_config(FIXED, 65536, 65536, 16, D, dtype) is None


def candidates(D: int, backward: bool) -> set[tuple[int, ...]]:
    table = tiles._costs(D, backward)
    return set(table[0]) if table else set()


@settings(max_examples=25)
@given(patterns(heads=True, max_leaves=4), st.integers(128, 5000), st.sampled_from([32, 64, 96, 128]),
       st.booleans())
def test_choice_is_the_default_or_a_candidate(node: ir.Node, n: int, D: int, backward: bool) -> None:
    groups = ir.head_counts(node)
    assume(groups <= 4)
    node_c = ir.concretize(node, n)
    default = (64, 64, 64, 64, 64, 64, 4, 2) if backward else (64, 64, 4, 3)
    got = tiles.choose(node_c, n, n - 1, 4 * groups, D, default, backward)
    assert got == default or got in candidates(D, backward)
    if got != default:  # a switch is predicted faster by the margin
        cost = {c[:2]: t for c, t in (tiles.BACKWARD_D64 if backward else tiles.FORWARD_D64).items()}
        def t(c: tuple[int, ...]) -> float:
            counts = tiles.counts(node_c, n, n - 1, c[0], c[1], 4 * groups)
            return cost[c[:2]].time(counts, backward)
        assert t(got) * tiles.MARGIN < t(default)


@settings(max_examples=25)
@given(patterns(heads=True, max_leaves=4), st.integers(1, 3000), st.integers(1, 3000),
       st.sampled_from([64, 128]), st.booleans(), st.booleans())
def test_pruning_never_changes_the_choice(node: ir.Node, nq: int, nk: int, D: int, backward: bool,
                                          dense: bool) -> None:
    # the lower bound skips lowering at candidates that cannot win; exhaustive search agrees
    groups = ir.head_counts(node)
    assume(groups <= 4)
    node_c = ir.concretize(node, nk)
    default = ((128, 128) if dense else (64, 64)) + ((64, 128, 128, 64, 8, 2) if backward else (4, 3))
    search = tiles._choose.__wrapped__  # type: ignore[attr-defined]  # uncached
    want = search(node_c, nq, nk, 2 * groups, D, default, backward, prune=False)
    assert search(node_c, nq, nk, 2 * groups, D, default, backward, prune=True) == want


def test_counts_are_the_plans() -> None:
    from patternc.lower import lower

    node = ir.concretize(FIXED, 1000)
    plan = lower(node, 1000, 1000, block_q=64, block_k=16, heads=4)
    c = tiles.counts(node, 1000, 1000, 64, 16, 4)
    assert c.full == 4 * int(plan.forward.full_num.sum()) and c.partial == 4 * int(plan.forward.num.sum())
    assert c.full + c.partial == 4 * int(plan.backward.full_num.sum() + plan.backward.num.sum())
    assert 0 < c.rows <= 4 * plan.num_q_blocks and 0 < c.cols <= 4 * plan.num_k_blocks


FWD_CANDS = sorted(candidates(64, False) | candidates(128, False))
BWD_CANDS = sorted(candidates(64, True) | candidates(128, True))


@settings(max_examples=10)
@given(patterns(heads=True, max_leaves=4), lengths(max_n=90), st.sampled_from(FWD_CANDS),
       st.sampled_from(BWD_CANDS), st.data())
def test_every_candidate_runs_correctly(node: ir.Node, nqk: tuple[int, int], fc: tuple[int, ...],
                                        bc: tuple[int, ...], data: st.DataObject) -> None:
    # odd lengths, GQA, the interpreter: the candidate configs (plan blocks 16 to 128 wide) against
    # the float64 reference, forward and gradients
    groups = ir.head_counts(node)
    assume(groups <= 2)
    nq, nk = nqk
    H, Hkv = 2 * groups, data.draw(st.sampled_from([1, 2]))
    g = torch.Generator().manual_seed(nq * 7 + nk)
    q, k, v = (torch.randn(1, h, n, 16, generator=g) for h, n in ((H, nq), (Hkv, nk), (Hkv, nk)))
    do = torch.randn(1, H, nq, 16, generator=g)
    out, lse = fwd.forward(q, k, v, node, config=ForwardConfig(*fc))
    torch.testing.assert_close(out, reference.attention(q, k, v, node), atol=2e-5, rtol=2e-5)
    got = bwd.backward(q, k, v, out, lse, do, node, config=BackwardConfig(*bc))
    qr, kr, vr = (t.double().requires_grad_() for t in (q, k, v))
    want = torch.autograd.grad(reference.attention(qr, kr, vr, node), (qr, kr, vr), do.double())
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, atol=2e-4, rtol=2e-4)


def test_candidates_tile_their_blocks() -> None:
    for c in BWD_CANDS:
        BackwardConfig(*c).check()
    assert dataclasses.astuple(bwd.gen.default_config(64, False))[:8] in candidates(64, True)
