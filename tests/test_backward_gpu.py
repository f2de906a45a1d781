"""Backward on the GPU at realistic sizes (up to 16k tokens): ``patternc.attention`` gradients
against float64 autograd of the reference formula. Run with ``pytest -m gpu`` on a CUDA machine."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import patternc
from patternc import ir
from patternc.codegen.backward import FLAT, ROLLED, BackwardConfig
from patternc.runtime.forward import forward

from .strategies import patterns
from .test_backward import head_shapes
from .test_backward_support import assert_close, chunked_ref_grads

pytestmark = pytest.mark.gpu
rb = importlib.import_module("patternc.runtime.backward")  # the package exports a function of that name

G16 = ir.TokenList.of(ir.Range(0, 16))
LARGE = {
    "band": ir.Band(256),
    "causal": ir.Causal(),
    "longformer": ir.Band(256) | ir.Global(G16),
    "bigbird": ir.Band(256) | ir.Global(G16) | ir.RandomBlocks(3, 64),
    "dilated": ir.Dilated(256, 2) | ir.Global(G16),
    "strided": (ir.Window(127, 0) | ir.Strided(128)) & ir.Causal(),
    "heads": ir.Heads((ir.Band(200) & ir.Causal(), ir.Causal() - ir.Rows(ir.TokenList.of(ir.Range(0, 300))))),
}


def run(node: ir.Node, B: int, H: int, HKV: int, nq: int, nk: int, D: int, dtype: torch.dtype,
        seed: int = 0) -> None:
    # printed before any launch: after an illegal memory access every later CUDA call fails, so
    # hypothesis's report (and its shrinking) names a later example, and this line the culprit
    print(f"run {node.sap()!r} B={B} H={H} HKV={HKV} nq={nq} nk={nk} D={D} {dtype} seed={seed}", flush=True)
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(B, H, nq, D, device="cuda", generator=g).to(dtype).requires_grad_()
    k = torch.randn(B, HKV, nk, D, device="cuda", generator=g).to(dtype).requires_grad_()
    v = torch.randn(B, HKV, nk, D, device="cuda", generator=g).to(dtype).requires_grad_()
    do = torch.randn(B, H, nq, D, device="cuda", generator=g).to(dtype)
    out = patternc.attention(q, k, v, node)
    got = torch.autograd.grad(out, (q, k, v), do)
    want = chunked_ref_grads(q, k, v, do, node, 1.0 / math.sqrt(D))
    for a, b, name in zip(got, want, ("dq", "dk", "dv")):
        assert_close(a, b, dtype, f"{name} of {node} (nq={nq}, nk={nk}, H={H}, HKV={HKV}, D={D}, {dtype})")


@settings(max_examples=12)
@given(patterns(heads=True, max_leaves=5), st.data())
def test_random_patterns_and_shapes(node: ir.Node, data: st.DataObject) -> None:
    groups = ir.head_counts(node)
    assume(groups <= 4)
    H, HKV = data.draw(head_shapes(groups))
    nk = data.draw(st.integers(1, 1500))
    nq = data.draw(st.sampled_from([nk, 1, data.draw(st.integers(1, nk))]))
    dtype = data.draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float32]))
    D = data.draw(st.sampled_from([16, 64, 96, 128]))
    run(node, data.draw(st.integers(1, 2)), H, HKV, nq, nk, D, dtype, seed=data.draw(st.integers(0, 9)))


@pytest.mark.parametrize("name", list(LARGE))
def test_16k_tokens(name: str) -> None:
    run(LARGE[name], 1, 2, 1 if name != "heads" else 2, 16384, 16384, 64, torch.bfloat16)


@pytest.mark.parametrize("D", [32, 96, 128, 256])
def test_head_dims_chunked_prefill(D: int) -> None:
    # 3000 queries at the end of 7001 keys (nq != nk, neither a block multiple), GQA 4:1
    node = ir.Band(300) & ir.Causal() | ir.Global(ir.TokenList.of(0, 1, 2)) | ir.Random(2)
    run(node, 1, 4, 1, 3000, 7001, D, torch.float16)


CONFIGS = {  # BackwardConfig's loop forms and per-kernel launch options, each on the GPU
    "unrolled": BackwardConfig(64, 64, 32, 64, 64, 32, 4, 2),
    "flat": BackwardConfig(64, 64, 32, 64, 64, 32, 4, 2, steps=FLAT),
    "rolled-128": BackwardConfig(128, 128, 64, 128, 128, 64, 8, 3, steps=ROLLED),
    "flat-128": BackwardConfig(128, 128, 64, 128, 128, 64, 8, 2, steps=FLAT),
    "dq-launch": BackwardConfig(64, 128, 64, 128, 64, 64, 8, 3, dq_warps=4, dq_stages=2),
}
STEP_PATTERNS = {  # FULL tiles only, PARTIAL and FULL, heavy global rows
    "blocks": ir.Blocks(256), "blocks-causal": ir.Blocks(256) & ir.Causal(),
    "longformer": ir.Band(200) | ir.Global(ir.TokenList.of(0, 1, 2)),
}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", list(STEP_PATTERNS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_step_loops_and_launch_options(monkeypatch: pytest.MonkeyPatch, config: str, name: str,
                                       fused: bool) -> None:
    # 3000 tokens (not a block multiple), D=128, bfloat16: one launch and two
    monkeypatch.setattr(rb, "_FUSED", fused)
    node, D = STEP_PATTERNS[name], 128
    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v, do = (torch.randn(1, 2, 3000, D, device="cuda", generator=g).to(torch.bfloat16)
                   for _ in range(4))
    out, lse = forward(q, k, v, node)
    got = rb.backward(q, k, v, out, lse, do, node, config=CONFIGS[config])
    want = chunked_ref_grads(q, k, v, do, node, 1.0 / math.sqrt(D))
    for a, b, grad in zip(got, want, ("dq", "dk", "dv")):
        assert_close(a, b, torch.bfloat16, f"{grad} of {name} with {config} (fused={fused})")
