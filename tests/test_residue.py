"""Residue-class execution (patternc.runtime.residue) against the dense reference.

The strategy is forced (``residue_mode="force"``) on random patterns that contain a strided or
dilated branch and on the stdlib patterns built from them; forward output and LSE and the
backward's dQ, dK, dV must match the reference (Triton's interpreter in CI). The decomposition
itself is checked exactly on dense masks: the plain rest plus every class of every gathered part
is the pattern, with no pair counted twice.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import patternc
from patternc import ir
from patternc.reference import mask_np
from patternc.runtime import residue
from patternc.runtime.backward import backward
from patternc.runtime.forward import forward

from .strategies import lengths, patterns
from .test_backward_support import assert_close, dq_statistics_only, ref_forward, ref_grads

STDLIB = Path(patternc.__file__).parent / "stdlib_patterns"


@st.composite
def residue_patterns(draw: st.DrawFn, heads: bool = False) -> ir.Node:
    """A pattern with a branch that implies ``d % r == 0``, joined to a random rest."""
    r = draw(st.integers(2, 5))
    w1, w2 = draw(st.integers(0, 4)), draw(st.integers(1, 6))
    core = draw(st.sampled_from([ir.Strided(r), ir.Dilated(w1, r), ir.Strided(r) & ir.Causal(),
                                 ir.Dilated(w2, r) & ir.Causal()]))
    core = core - ir.Window(draw(st.integers(0, 3)), 0) if draw(st.booleans()) else core
    rest = draw(patterns(max_leaves=3))
    node = core | rest if draw(st.booleans()) else core
    if heads and draw(st.booleans()):
        node = ir.Heads((node, draw(patterns(max_leaves=2)))) | ir.Empty()
    return node


def _inputs(B: int, H: int, HKV: int, nq: int, nk: int, D: int, dtype: torch.dtype,
            seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, h, n, D, generator=g).to(dtype)
                 for h, n in ((H, nq), (HKV, nk), (HKV, nk), (H, nq)))


def _check_forward(node: ir.Node, B: int, H: int, HKV: int, nq: int, nk: int, D: int,
                   dtype: torch.dtype, seed: int = 0) -> None:
    q, k, v, _ = _inputs(B, H, HKV, nq, nk, D, dtype, seed)
    scale = 1.0 / math.sqrt(D)
    out, lse = forward(q, k, v, node, scale, residue_mode="force")
    want, want_lse = ref_forward(q, k, v, node, scale)
    assert_close(out, want, dtype, f"out of {node.sap()} (nq={nq}, nk={nk})")
    assert torch.equal(torch.isinf(lse), torch.isinf(want_lse)), node.sap()
    fin = torch.isfinite(want_lse)
    torch.testing.assert_close(lse[fin], want_lse[fin], atol=2e-2 if dtype != torch.float32 else 1e-4, rtol=0)


def _check_backward(node: ir.Node, B: int, H: int, HKV: int, nq: int, nk: int, D: int,
                    dtype: torch.dtype, seed: int = 0) -> None:
    q, k, v, do = _inputs(B, H, HKV, nq, nk, D, dtype, seed)
    scale = 1.0 / math.sqrt(D)
    out, lse = ref_forward(q, k, v, node, scale)
    got = backward(q, k, v, out, lse, do, node, scale, residue_mode="force")
    for a, b, name in zip(got, ref_grads(q, k, v, do, node, scale), ("dq", "dk", "dv")):
        assert_close(a, b, dtype, f"{name} of {node.sap()} (nq={nq}, nk={nk}, H={H}, HKV={HKV})")


def _covered(node: ir.Node, nq: int, nk: int, H: int) -> np.ndarray:
    """How often each pair is computed by the decomposition (rest + every class of every part)."""
    node_c = ir.concretize(node, nk)
    # None: the branch was absorbed by the rest (``strided(2) | full``), which then runs alone
    dec = residue.decompose(node_c, nq, nk, H, 16, 16, "force") or residue.Decomposition(node_c, ())
    G = ir.head_counts(node_c)
    count = np.zeros((G, nq, nk), dtype=np.int64)
    for g in range(G):
        count[g] += mask_np(ir.select_head(dec.rest, g, G), nq, nk)
        for part in dec.parts:
            virt = mask_np(ir.select_head(part.node, g, G), part.nq, part.nk)
            for c in range(part.r):
                rows = c + part.r * (np.arange(part.nq) + part.u0) - part.off
                keys = c + part.r * np.arange(part.nk)
                ok_r, ok_k = (rows >= 0) & (rows < nq), keys < nk
                sub = virt[np.ix_(ok_r, ok_k)]
                count[g][np.ix_(rows[ok_r], keys[ok_k])] += sub
    return count


@settings(max_examples=60, deadline=None)
@given(residue_patterns(heads=True), lengths(max_n=60))
def test_decomposition_covers_every_pair_once(node: ir.Node, nqk: tuple[int, int]) -> None:
    nq, nk = nqk
    node_c = ir.concretize(node, nk)
    G = ir.head_counts(node_c)
    want = np.stack([mask_np(ir.select_head(node_c, g, G), nq, nk) for g in range(G)])
    np.testing.assert_array_equal(_covered(node, nq, nk, 4), want.astype(np.int64))


def test_decomposition_with_more_queries_than_keys() -> None:
    node = ir.Strided(3) & ir.Causal() | ir.Window(2, 0)
    node_c = ir.concretize(node, 10)
    want = mask_np(node_c, 25, 10)[None]
    np.testing.assert_array_equal(_covered(node, 25, 10, 1), want.astype(np.int64))


def test_auto_mode_gathers_only_when_it_cuts_the_work() -> None:
    strided = patternc.pattern("(window(127, 0) | strided(128)) & causal")
    dec = residue.decompose(ir.concretize(strided, 8192), 8192, 8192, 16, 64, 64, "auto")
    assert dec is not None and [p.r for p in dec.parts] == [128]
    # one head, or 16 heads at 4k tokens: the saving does not pay for a second launch
    assert residue.decompose(ir.concretize(strided, 8192), 8192, 8192, 1, 64, 64, "auto") is None
    assert residue.decompose(ir.concretize(strided, 4096), 4096, 4096, 16, 64, 64, "auto") is None
    assert residue.decompose(ir.concretize(strided, 4096), 4096, 4096, 16, 64, 64, "force") is not None
    assert residue.decompose(ir.Band(64), 8192, 8192, 1, 64, 64, "auto") is None
    # dilation 2 with a narrow window: the plain blocks are already tight
    assert residue.decompose(ir.Dilated(8, 2), 8192, 8192, 1, 64, 64, "auto") is None
    assert residue.decompose(ir.concretize(strided, 8192), 8192, 8192, 1, 64, 64, "off") is None


def test_bad_mode_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATTERNC_RESIDUE", "sometimes")
    with pytest.raises(ValueError, match="PATTERNC_RESIDUE"):
        residue.default_mode()


# (H, HKV): with heads(...) patterns, groups with a KV head each (2, 2 and 4, 4), and groups
# sharing KV heads (2, 1 and 4, 1), which the backward writes together (runtime.writes)
HEAD_SHAPES = [(2, 1), (2, 2), (4, 1), (4, 4)]


@settings(max_examples=12, deadline=None)
@given(residue_patterns(heads=True), lengths(max_n=70), st.sampled_from(HEAD_SHAPES),
       st.sampled_from([torch.float32, torch.bfloat16]))
def test_forward_forced_residue_matches_reference(node: ir.Node, nqk: tuple[int, int],
                                                  heads: tuple[int, int], dtype: torch.dtype) -> None:
    _check_forward(node, 1, *heads, *nqk, 16, dtype)


@settings(max_examples=10, deadline=None)
@given(residue_patterns(heads=True), lengths(max_n=50), st.sampled_from(HEAD_SHAPES))
def test_backward_forced_residue_matches_reference(node: ir.Node, nqk: tuple[int, int],
                                                   heads: tuple[int, int]) -> None:
    _check_backward(node, 1, *heads, *nqk, 16, torch.float32)


STD = [("sparse_transformer.sap", None), ("dilated_sliding_window.sap", None), ("longformer.sap", 4)]


@pytest.mark.parametrize("file,H", STD)
def test_stdlib_patterns_forced_residue(file: str, H: int | None) -> None:
    prog = patternc.load(STDLIB / file)
    names = [n for n in prog.exported if residue.decompose(
        ir.concretize(prog[n].node, 150), 97, 150, H or 2, 16, 16, "force") is not None]
    assert names, file
    for name in names:
        node = prog[name].node
        small = ir.concretize(node, 150)
        _check_forward(small, 1, H or 2, 1, 97, 150, 32, torch.bfloat16)
        _check_backward(small, 1, H or 2, 1, 97, 150, 32, torch.float32)
        if ir.head_counts(small) > 1:  # a KV head per group: each group's heads written by one step
            _check_backward(small, 1, H or 2, H or 2, 97, 150, 32, torch.float32)


WHOLE = ["strided(4) & causal", "dilated(3, 2) | window(2, 1)", "(window(7, 0) | strided(8)) & causal"]


@pytest.mark.parametrize("text", WHOLE)
@pytest.mark.parametrize(("nq", "nk"), [(512, 512), (256, 512), (511, 511), (255, 511)])
def test_whole_classes_take_the_unmasked_paths(text: str, nq: int, nk: int) -> None:
    # every class holds whole blocks of rows and keys (512): the residue launches skip the bound
    # tests (EVEN_N forward, EVEN_Q / EVEN_K backward); one key fewer (511) and the gathered grid
    # is still whole blocks (ceil(511 / r) = 512 / r), but the last class lacks its last key
    import importlib

    rf = importlib.import_module("patternc.runtime.forward")
    node = patternc.pattern(text)
    _check_forward(node, 1, 2, 1, nq, nk, 16, torch.bfloat16)
    _check_backward(node, 1, 2, 1, nq, nk, 16, torch.float32)
    cfg = rf.default_config(nq, nk, 16, torch.bfloat16, True)
    launches = [la for la in rf._launches(node, 1, 2, 1, nq, nk, 16, torch.bfloat16, "cpu", cfg, "force")
                if la.res]
    sites = [site for la in launches for group in la.sites.values() for site in group
             if site.kwargs.get("RES")]
    assert launches and sites
    whole = nk % 2 == 0
    assert all(site.kwargs["EVEN_N"] == whole for site in sites)
    assert all(residue.whole_classes(nq, nk, la.res[0]) == (whole, whole) for la in launches)


@pytest.mark.parametrize("text", ["(window(3, 0) | strided(4)) & causal",
                                  "heads(dilated(3, 2), band(2)) | global([0])"])
def test_backward_steps_compute_their_statistics(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    # two launches per step, no preprocess: the rest's and each gathered part's dQ launch compute
    # the row statistics that their dK/dV launches read (runtime.backward.DQ_STATS); GQA, nq != nk
    dq_statistics_only(monkeypatch)
    node = patternc.pattern(text)
    _check_backward(node, 1, 4, 2, 70, 67, 16, torch.float32)
    _check_backward(node, 1, 2, 1, 64, 64, 16, torch.bfloat16)
