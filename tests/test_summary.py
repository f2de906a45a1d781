"""Summary gather (``patternc.runtime.summary``) and its IR primitive ``$steps`` (``ir.Steps``).

The primitive against a brute-force transcription of its definition, its lowering and both
predicates against the reference mask; the decomposition against the pattern's mask (exact and
disjoint); the whole path (forward, LSE, gradients, also through the LSE) against the float64
reference on Triton's interpreter (also with every backward tile split); and the switch (auto / force / off).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import patternc
from patternc import ir, reference
from patternc.lower.predicate import NumpyEnv, predicate
from patternc.runtime import attention, autograd, backward, summary
from patternc.runtime.forward import predicate_mask

from .test_backward_support import dq_statistics_only, ref_forward
from .test_lower import check_plan

causal = ir.Causal()


@st.composite
def steps_nodes(draw: st.DrawFn) -> ir.Steps:
    lq = draw(st.integers(1, 12))
    return ir.Steps(lq, draw(st.integers(1, lq)), draw(st.integers(0, 40)))


def brute_steps(node: ir.Steps, nq: int, nk: int) -> np.ndarray:
    """``t // lk < (p + shift) // lq`` pair by pair, Python integers (floor division)."""
    lq, lk, shift = int(node.lq), int(node.lk), int(node.shift)
    return np.array([[t // lk < (a + nk - nq + shift) // lq for t in range(nk)] for a in range(nq)],
                    dtype=bool).reshape(nq, nk)


@given(steps_nodes(), st.integers(0, 40), st.integers(0, 40))
def test_steps_mask_matches_its_definition(node: ir.Steps, nq: int, nk: int) -> None:
    np.testing.assert_array_equal(reference.mask(node, nq, nk).numpy(), brute_steps(node, nq, nk))


@given(steps_nodes(), st.integers(0, 45), st.integers(0, 45), st.sampled_from([1, 2, 3, 5, 16]),
       st.sampled_from([1, 2, 3, 7, 16]), st.sampled_from(["alone", "causal", "heads"]))
def test_steps_tables_match_the_mask(node: ir.Steps, nq: int, nk: int, bq: int, bk: int, form: str) -> None:
    if form == "alone":
        check_plan(node, nq, nk, bq, bk)
    elif form == "causal":
        check_plan(node & causal, nq, nk, bq, bk)
    else:
        check_plan(ir.Heads((ir.Empty(), node)), nq, nk, bq, bk, heads=4)


@settings(max_examples=15)
@given(steps_nodes(), st.integers(1, 40), st.integers(1, 40))
def test_steps_predicates_match_the_mask(node: ir.Steps, nq: int, nk: int) -> None:
    want = reference.mask(node, nq, nk).numpy()
    p = np.arange(nq, dtype=np.int64)[:, None] + (nk - nq)
    j = np.arange(nk, dtype=np.int64)[None, :]
    np.testing.assert_array_equal(np.broadcast_to(predicate(node, p, j, nk, NumpyEnv(nk)), want.shape), want)
    if nk >= nq:  # the runtime's use: p + shift >= 0 (the Triton expression floors anyway)
        np.testing.assert_array_equal(predicate_mask(node, nq, nk, block=16).numpy(), want)


def test_steps_text_is_internal_and_travels_in_process() -> None:
    node = ir.Heads((ir.Empty(), ir.Steps(16, 4, 100))) & causal
    text = autograd.pattern_key(node)
    assert "$steps(16, 4, 100)" in text
    assert autograd.pattern_node(text) is node
    with pytest.raises(patternc.SapError):
        patternc.pattern(text)  # no .sap source can spell it


# ----------------------------------------------------------------------------- decomposition


def shapes(l: int, c: int) -> dict[str, ir.Node]:
    fixed, blocks = ir.Fixed(l, c), ir.Blocks(l)
    summ = ir.Diff(fixed, blocks)
    return {
        "fixed": fixed & causal,
        "summary": summ & causal,
        "fixed_heads": ir.Heads((blocks, summ)) & causal,
        "causal_first": causal & fixed,
        "heads_causal_first": causal & ir.Heads((summ, fixed, ir.Empty(), blocks)),
    }


def covered(dec: summary.Summary, nq: int, nk: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """The rest's mask and the summary part's mask mapped back to physical keys, ``[H, nq, nk]``."""
    rest = reference.mask(dec.rest, nq, nk, heads=H).numpy() if not isinstance(dec.rest, ir.Empty) \
        else np.zeros((H, nq, nk), dtype=bool)
    compact = reference.mask(dec.steps, nq, dec.nks, heads=H).numpy()
    summ = np.zeros((H, nq, nk), dtype=bool)
    summ[:, :, dec.index("cpu").numpy()] = compact
    return rest, summ


@given(st.integers(1, 12), st.data(), st.sampled_from(sorted(shapes(1, 1))))
def test_decomposition_is_exact_and_disjoint(l: int, data: st.DataObject, name: str) -> None:
    c = data.draw(st.integers(1, l))
    nk = data.draw(st.integers(summary.MIN_BLOCKS * l, summary.MIN_BLOCKS * l + 37))
    nq = data.draw(st.integers(1, nk))
    node = shapes(l, c)[name]
    dec = summary.decompose(node, nq, nk)
    assert dec is not None and (dec.l, dec.c) == (l, c)
    idx = dec.index("cpu").numpy()
    assert idx.size == dec.nks and np.array_equal(idx, np.flatnonzero(np.arange(nk) % l >= l - c))
    H = 4
    rest, summ = covered(dec, nq, nk, H)
    assert not (rest & summ).any()
    np.testing.assert_array_equal(rest | summ, reference.mask(node, nq, nk, heads=H).numpy())


def test_decomposition_of_symbolic_stdlib_patterns() -> None:
    prog = patternc.load("patternc/stdlib_patterns/sparse_transformer.sap")
    for name in ("sparse_transformer_fixed", "sparse_transformer_summary", "sparse_transformer_fixed_heads"):
        node = prog[name].node  # l = sqrt(n), c = min(8, sqrt(n))
        dec = summary.decompose(node, 700, 1000)
        assert dec is not None and (dec.l, dec.c) == (31, 8), name
        rest, summ = covered(dec, 700, 1000, 2)
        np.testing.assert_array_equal(rest | summ, reference.mask(node, 700, 1000, heads=2).numpy())


@pytest.mark.parametrize("node, nq, nk", [
    (ir.Fixed(8, 2), 40, 40),  # no causal
    (ir.Fixed(8, 2) & ir.Window(5, 0), 40, 40),
    (ir.Blocks(8) & causal, 40, 40),  # no summary part
    (ir.Heads((ir.Blocks(8), ir.Blocks(8))) & causal, 40, 40),
    (ir.Diff(ir.Fixed(8, 2), ir.Blocks(4)) & causal, 40, 40),  # other block length
    (ir.Heads((ir.Fixed(8, 2), ir.Fixed(8, 3))) & causal, 40, 40),  # two different summaries
    (ir.Heads((ir.Fixed(8, 2), ir.Blocks(4))) & causal, 40, 40),
    (ir.Fixed(8, 2) & causal & ir.Full(), 40, 40),
    (ir.Fixed(8, 9) & causal, 40, 40),  # c > l: the plain path reports it
    (ir.Fixed(8, 2) & causal, 40, 30),  # more queries than keys
    (ir.Fixed(8, 2) & causal, 10, 15),  # fewer than MIN_BLOCKS blocks of keys
    (ir.Fixed(8, 2) & causal, 0, 40),
])
def test_other_shapes_are_not_decomposed(node: ir.Node, nq: int, nk: int) -> None:
    assert summary.decompose(node, nq, nk) is None


# ----------------------------------------------------------------------------- end to end


@pytest.fixture
def on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary, "_MODE", "force")


def spy_on_summary(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every gather of summary keys (``summary.gather``, still made): one entry per call."""
    calls: list[int] = []
    real = summary.gather

    def spy(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(summary, "gather", spy)
    return calls


def _inputs(H: int, Hkv: int, nq: int, nk: int, D: int, dtype: torch.dtype,
            seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, H, nq, D, generator=g).to(dtype)
    k = torch.randn(2, Hkv, nk, D, generator=g).to(dtype)
    v = torch.randn(2, Hkv, nk, D, generator=g).to(dtype)
    return q, k, v


def _ref_lse(q: torch.Tensor, k: torch.Tensor, node: ir.Node, scale: float) -> torch.Tensor:
    H, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    m = reference.mask(node, nq, nk, heads=H)
    s = (q @ k.repeat_interleave(H // k.shape[1], 1).transpose(-1, -2)) * scale
    return torch.logsumexp(s.masked_fill(~m, -math.inf), -1)


@pytest.mark.usefixtures("on")
@pytest.mark.parametrize("name, nq, nk", [
    ("fixed", 45, 45), ("summary", 37, 45), ("fixed_heads", 50, 61), ("heads_causal_first", 33, 40)])
def test_forward_and_gradients_match_reference(name: str, nq: int, nk: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    check_against_reference(name, nq, nk, monkeypatch)


@pytest.mark.usefixtures("on")
@pytest.mark.parametrize("name, nq, nk", [("fixed", 45, 45), ("fixed_heads", 50, 61)])
def test_gradients_with_the_statistics_from_dq(name: str, nq: int, nk: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # two launches per step, no preprocess: the rest's and the summary part's dQ launches each
    # compute the row statistics that their dK/dV launches read (runtime.backward.DQ_STATS)
    dq_statistics_only(monkeypatch)
    check_against_reference(name, nq, nk, monkeypatch)


@pytest.fixture
def split_everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Backward tiles split into chunks of one block wherever a schedule may split them."""
    real = backward.gen.default_config

    def chunked(D: int, interpret: bool) -> object:
        return dataclasses.replace(real(D, interpret), chunk=1)

    caches = (backward._summary_steps, backward._cached_setup, backward._CALLS.clear)
    for f in caches:
        getattr(f, "cache_clear", f)()
    monkeypatch.setattr(backward.gen, "default_config", chunked)
    yield
    for f in caches:
        getattr(f, "cache_clear", f)()


@pytest.mark.usefixtures("on", "split_everything")
@pytest.mark.parametrize("name", ["fixed", "summary"])
def test_split_summary_key_tiles(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the summary part's dK / dV tiles split across programs (fresh compact buffers); its dQ adds
    # to the rest's and must not split
    nq = nk = 61
    dec = summary.decompose(shapes(16, 5)[name], nq, nk)
    assert dec is not None
    step = backward._summary_steps(dec, 4, nq, 16, torch.float32, "cpu")[-1]
    assert step.setup.sk.n_slots > 0
    assert step.accum == (name == "fixed") and not (step.accum and step.setup.sq.n_slots)
    check_against_reference(name, nq, nk, monkeypatch)


def check_against_reference(name: str, nq: int, nk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output, LSE and gradients (also through the LSE) of ``shapes(16, 5)[name]`` against float64."""
    l, c, D, H, Hkv = 16, 5, 16, 4, 2
    node = shapes(l, c)[name]
    assert summary.decompose(node, nq, nk) is not None
    calls = spy_on_summary(monkeypatch)
    q, k, v = (t.requires_grad_() for t in _inputs(H, Hkv, nq, nk, D, torch.float32, nq + nk))
    out, lse = attention(q, k, v, node, return_lse=True)
    assert calls
    scale = 1.0 / math.sqrt(D)
    g = torch.Generator().manual_seed(1)
    do, dl = torch.randn(out.shape, generator=g), torch.randn(lse.shape, generator=g)
    # float64 reference of the same loss: out . do + lse . dlse over the rows with keys
    qq, kk, vv = (t.detach().double().requires_grad_() for t in (q, k, v))
    ro = reference.attention(qq, kk, vv, node, scale)
    rl = _ref_lse(qq, kk, node, scale)
    some = torch.isfinite(rl)
    assert (~some).any() == (name != "fixed")  # summary-only heads leave the first block empty
    torch.testing.assert_close(out.double(), ro, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(lse.double()[some], rl[some], atol=2e-5, rtol=2e-5)
    assert torch.equal(torch.isinf(lse), ~some) and out[~some].eq(0).all()
    loss = (out * do).sum() + (torch.where(some, lse, 0) * dl).sum()
    got = torch.autograd.grad(loss, (q, k, v))
    ref_loss = (ro * do.double()).sum() + (torch.where(some, rl, 0) * dl.double()).sum()
    want = torch.autograd.grad(ref_loss, (qq, kk, vv))
    for a, b, what in zip(got, want, ("dq", "dk", "dv")):
        assert torch.isfinite(a).all(), what
        torch.testing.assert_close(a.double(), b, atol=5e-5, rtol=5e-5, msg=what)


@pytest.mark.usefixtures("on")
@settings(max_examples=6)
@given(st.integers(3, 20), st.data(), st.sampled_from(["fixed", "summary", "fixed_heads"]))
def test_forward_matches_reference_on_random_shapes(l: int, data: st.DataObject, name: str) -> None:
    c = data.draw(st.integers(1, l - 1))
    nk = data.draw(st.integers(2 * l, 2 * l + 30))
    nq = data.draw(st.integers(1, nk))
    node = shapes(l, c)[name]
    q, k, v = _inputs(4, 2, nq, nk, 8, torch.float32, l * 100 + nk)
    out, lse = attention(q, k, v, node, return_lse=True)
    ro, rl = ref_forward(q, k, v, node, 1.0 / math.sqrt(8))
    torch.testing.assert_close(out, ro, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(lse, rl, atol=2e-5, rtol=2e-5)


@pytest.mark.usefixtures("on")
def test_custom_ops_take_the_path_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.compile calls the custom ops; the gather happens inside them, so it runs the same
    # launches as the eager autograd.Function, bit for bit, forward and backward
    node = shapes(16, 5)["fixed"]
    q, k, v = (t.requires_grad_() for t in _inputs(4, 2, 45, 45, 16, torch.float32, 7))
    calls = spy_on_summary(monkeypatch)
    out, lse = attention(q, k, v, node, return_lse=True)
    eager = torch.autograd.grad(out.sum() + lse.sum(), (q, k, v))
    seen = len(calls)
    o2, l2 = torch.ops.patternc.attention_fwd(q, k, v, autograd.pattern_key(node), 0.25)
    ops = torch.autograd.grad(o2.sum() + l2.sum(), (q, k, v))
    assert seen == 2 and len(calls) == 4  # forward and backward, each way
    assert torch.equal(out, o2) and torch.equal(lse, l2)
    assert all(torch.equal(a, b) for a, b in zip(eager, ops))


@pytest.mark.usefixtures("on")
def test_half_precision_forward() -> None:
    node = shapes(16, 4)["fixed"]
    q, k, v = _inputs(2, 2, 40, 48, 16, torch.float16, 3)
    out = attention(q, k, v, node)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float16
    ro, _ = ref_forward(q, k, v, node, 0.25)
    torch.testing.assert_close(out.float(), ro.float(), atol=1e-2, rtol=1e-2)


# ----------------------------------------------------------------------------- the switch


@pytest.mark.parametrize("value, nq, taken", [
    (None, 40, False), ("auto", 40, False), ("force", 40, True), ("off", 40, False),
    (None, 4096, True), ("auto", 4096, True), ("off", 4096, False)])
def test_switch(value: str | None, nq: int, taken: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # auto: only where the summary part holds MIN_PAIRS (query, summary key) pairs
    monkeypatch.setattr(summary, "_MODE", None)
    if value is None:
        monkeypatch.delenv("PATTERNC_SUMMARY", raising=False)
    else:
        monkeypatch.setenv("PATTERNC_SUMMARY", value)
    node = shapes(4, 2)["fixed"]  # half the keys are summary keys
    dec = summary.decompose(node, nq, nq)
    assert dec is not None and (nq * dec.nks >= summary.MIN_PAIRS) == (nq == 4096)
    assert (summary.choose(node, nq, nq) is not None) == taken


def test_switch_takes_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    class Taken(Exception):
        pass

    def fail(*args: object) -> None:
        raise Taken

    monkeypatch.setattr(summary, "gather", fail)
    q, k, v = _inputs(2, 2, 40, 40, 8, torch.float32, 0)
    node = shapes(8, 2)["fixed"]
    summary.set_mode("off")
    try:
        attention(q, k, v, node)  # the plain path: no gather
        summary.set_mode("force")
        with pytest.raises(Taken):
            attention(q, k, v, node)
    finally:
        summary.set_mode(None)


def test_bad_mode_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary, "_MODE", None)
    monkeypatch.setenv("PATTERNC_SUMMARY", "sometimes")
    with pytest.raises(ValueError, match="PATTERNC_SUMMARY must be one of auto, force, off"):
        summary.mode()
    with pytest.raises(ValueError, match="summary mode"):
        summary.set_mode("yes")
