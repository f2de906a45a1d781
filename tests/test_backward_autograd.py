"""The whole differentiable path: ``patternc.attention`` (lowering, forward kernel, custom ops,
backward kernels) against the reference's autograd, and the custom ops' registrations."""

from __future__ import annotations

import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import patternc
from patternc import ir
from patternc.runtime import autograd

from .strategies import lengths, patterns
from .test_backward import DTYPES, head_shapes
from .test_backward_support import assert_close, ref_forward, ref_grads


def inputs(B: int, H: int, HKV: int, nq: int, nk: int, D: int, dtype: torch.dtype,
           seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, nq, D, generator=g).to(dtype).requires_grad_()
    k = torch.randn(B, HKV, nk, D, generator=g).to(dtype).requires_grad_()
    v = torch.randn(B, HKV, nk, D, generator=g).to(dtype).requires_grad_()
    return q, k, v, torch.randn(B, H, nq, D, generator=g).to(dtype)


@settings(max_examples=12)
@given(patterns(heads=True, max_leaves=4), lengths(max_n=40), st.data())
def test_attention_gradients_match_reference(node: ir.Node, nqk: tuple[int, int],
                                             data: st.DataObject) -> None:
    groups = ir.head_counts(node)
    assume(groups <= 4)
    H, HKV = data.draw(head_shapes(groups))
    nq, nk = nqk
    dtype = data.draw(st.sampled_from(DTYPES))
    q, k, v, do = inputs(1, H, HKV, nq, nk, 16, dtype, seed=data.draw(st.integers(0, 9)))
    out = patternc.attention(q, k, v, node)
    got = torch.autograd.grad(out, (q, k, v), do)
    want = ref_grads(q, k, v, do, node, 0.25)
    for a, b, name in zip(got, want, ("dq", "dk", "dv")):
        assert_close(a, b, dtype, f"{name} of {node} (nq={nq}, nk={nk}, H={H}, HKV={HKV}, {dtype})")


def test_non_contiguous_inputs_and_scale() -> None:
    # [B, n, H, D] projections viewed as [B, H, n, D]: strided q, k, v and a strided dO
    node = ir.Band(3) & ir.Causal() | ir.Global(ir.TokenList.of(0))
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 33, 2, 24, generator=g).transpose(1, 2).requires_grad_() for _ in range(3))
    out = patternc.attention(q, k, v, node, scale=0.3)
    do = torch.randn(2, 33, 2, 24, generator=g).transpose(1, 2)
    got = torch.autograd.grad(out, (q, k, v), do)
    for a, b, name in zip(got, ref_grads(q, k, v, do, node, 0.3), ("dq", "dk", "dv")):
        assert_close(a, b, torch.float32, name)


def test_lse_output_is_differentiable() -> None:
    node = ir.Window(4, 1) | ir.Cols(ir.TokenList.of(2))
    q, k, v, do = inputs(1, 2, 1, 20, 26, 16, torch.float32, seed=5)
    w = torch.randn(1, 2, 20)
    out, lse = patternc.attention(q, k, v, node, return_lse=True)
    got = torch.autograd.grad((out * do).sum() + (lse * w).sum(), (q, k, v))
    qq, kk, vv = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref_out, _ = ref_forward(qq, kk, vv, node, 0.25)
    m = node.mask(20, nk=26)
    s = (qq @ kk.repeat_interleave(2, 1).transpose(-1, -2) * 0.25).masked_fill(~m, -math.inf)
    loss = (ref_out * do.double()).sum() + (torch.logsumexp(s, -1) * w).sum()
    want = torch.autograd.grad(loss, (qq, kk, vv))
    for a, b, name in zip(got, want, ("dq", "dk", "dv")):
        assert_close(a, b, torch.float32, name)


def test_empty_rows_give_zero_gradients_end_to_end() -> None:
    node = ir.Causal() - ir.Rows(ir.TokenList.of(ir.Range(0, 6)))
    q, k, v, do = inputs(1, 2, 2, 20, 20, 16, torch.bfloat16)
    out = patternc.attention(q, k, v, node)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), do)
    assert not any(t.isnan().any() for t in (out, dq, dk, dv))
    assert (out[:, :, :6] == 0).all() and (dq[:, :, :6] == 0).all()


def test_custom_ops_pass_opcheck() -> None:
    # schema, fake (meta) implementations, autograd registration, AOT dispatch
    node = ir.Band(2) | ir.Global(ir.TokenList.of(0))
    q, k, v, do = inputs(1, 2, 1, 18, 18, 16, torch.float32)
    key = autograd.pattern_key(node)
    torch.library.opcheck(torch.ops.patternc.attention_fwd.default, (q, k, v, key, 0.25))
    out, lse = torch.ops.patternc.attention_fwd(q, k, v, key, 0.25)
    args = (do, q.detach(), k.detach(), v.detach(), out.detach(), lse.detach(), None, key, 0.25)
    torch.library.opcheck(torch.ops.patternc.attention_bwd.default, args,
                          test_utils=("test_schema", "test_faketensor"))


def test_pattern_text_round_trips_through_the_op() -> None:
    node = ir.Heads((ir.Band(2), ir.Random(2, seed=3) & ir.Causal()))
    key = autograd.pattern_key(node)
    assert autograd.pattern_node(key) == node
    # a key never registered in this process is parsed back from its canonical text
    text = (ir.Band(5) | ir.Strided(3)).sap()
    autograd._REGISTRY.pop(text, None)
    assert autograd.pattern_node(text) == ir.Band(5) | ir.Strided(3)


@settings(max_examples=6, deadline=None)
@given(patterns(heads=True, max_leaves=3), lengths(max_n=40), st.data())
def test_eager_function_matches_the_custom_ops_bitwise(node: ir.Node, nqk: tuple[int, int],
                                                      data: st.DataObject) -> None:
    # eager calls with grad run autograd._EagerAttention, torch.compile the ops: same kernels, same bits
    groups = ir.head_counts(node)
    assume(groups <= 4)
    H, HKV = data.draw(head_shapes(groups))
    q, k, v, do = inputs(1, H, HKV, *nqk, 16, data.draw(st.sampled_from(DTYPES)))
    w = torch.randn(q.shape[:3]).to(torch.float32)
    out, lse = patternc.attention(q, k, v, node, return_lse=True)
    got = torch.autograd.grad((out.float() * do.float()).sum() + (lse * w).sum(), (q, k, v))
    o2, l2 = torch.ops.patternc.attention_fwd(q, k, v, autograd.pattern_key(node), 1 / math.sqrt(16))
    want = torch.autograd.grad((o2.float() * do.float()).sum() + (l2 * w).sum(), (q, k, v))
    assert torch.equal(out, o2) and torch.equal(lse, l2)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
