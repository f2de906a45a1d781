"""The forward kernel on a GPU at realistic sizes (up to 16k tokens), against a chunked fp32
reference built from the dense reference mask. Run with ``pytest -m gpu`` on a CUDA machine."""

from __future__ import annotations

import math

import pytest
import torch

from patternc import ir, reference
from patternc.runtime import attention

pytestmark = pytest.mark.gpu

G16 = ir.TokenList.of(ir.Range(0, 16))
PATTERNS = {
    "band256": ir.Band(256),
    "causal": ir.Causal(),
    "longformer": ir.Band(256) | ir.Global(G16),
    "bigbird": ir.Band(256) | ir.Global(G16) | ir.RandomBlocks(3, 64),
    "dilated": ir.Dilated(256, 2) | ir.Global(G16),
    "strided": (ir.Window(127, 0) | ir.Strided(128)) & ir.Causal(),
    "heads": ir.Heads((ir.Band(128), ir.Dilated(64, 2) & ir.Causal())) | ir.Cols(ir.TokenList.of(0, 1, 2, 3)),
    "random": ir.Random(8, seed=1) | ir.Window(63, 0) | ir.Rows(ir.TokenList.of(*range(0, 4000, 250))),
}


def chunked_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, node: ir.Node,
                      chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 attention and natural-log LSE, a query chunk at a time (the mask from the reference)."""
    B, H, nq, D = q.shape
    Hkv, nk = k.shape[1], k.shape[2]
    m = reference.mask(node, nq, nk, heads=H).to(q.device)  # [H, nq, nk] bool
    scale = 1.0 / math.sqrt(D)
    out = torch.empty(B, H, nq, D, dtype=torch.float32, device=q.device)
    lse = torch.empty(B, H, nq, dtype=torch.float32, device=q.device)
    for h in range(H):
        kk, vv = k[:, h // (H // Hkv)].float(), v[:, h // (H // Hkv)].float()
        for s in range(0, nq, chunk):
            mm = m[h, s:s + chunk]
            sc = (q[:, h, s:s + chunk].float() @ kk.transpose(-1, -2)) * scale
            sc = sc.masked_fill(~mm, float("-inf"))
            lse[:, h, s:s + chunk] = torch.logsumexp(sc, -1)
            w = torch.softmax(sc.masked_fill(~mm.any(-1, keepdim=True), 0.0), -1).masked_fill(~mm, 0.0)
            out[:, h, s:s + chunk] = w @ vv
    return out, lse


def _run(node: ir.Node, B: int, H: int, Hkv: int, nq: int, nk: int, D: int, dtype: torch.dtype,
         tol: float) -> None:
    gen = torch.Generator(device="cuda").manual_seed(nq + nk + D)
    q = torch.randn(B, H, nq, D, device="cuda", generator=gen).to(dtype)
    k = torch.randn(B, Hkv, nk, D, device="cuda", generator=gen).to(dtype)
    v = torch.randn(B, Hkv, nk, D, device="cuda", generator=gen).to(dtype)
    out, lse = attention(q, k, v, node, return_lse=True)
    want, want_lse = chunked_reference(q, k, v, node)
    assert not out.isnan().any()
    torch.testing.assert_close(out.float(), want, atol=tol, rtol=tol)
    empty = torch.isinf(want_lse)
    assert torch.equal(torch.isinf(lse), empty)
    assert (out[empty] == 0).all()
    torch.testing.assert_close(lse[~empty], want_lse[~empty], atol=tol, rtol=tol)


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize(("n", "D"), [(4096, 64), (16384, 128)])
def test_self_attention_bf16(name: str, n: int, D: int) -> None:
    _run(PATTERNS[name], 1, 4, 2, n, n, D, torch.bfloat16, 2e-2)


@pytest.mark.parametrize("name", ["longformer", "bigbird", "strided", "random"])
@pytest.mark.parametrize("nq", [1, 1000])
def test_decode_and_chunked_prefill(name: str, nq: int) -> None:
    _run(PATTERNS[name], 2, 4, 1, nq, 16384, 64, torch.bfloat16, 2e-2)


@pytest.mark.parametrize(("dtype", "D", "tol"), [(torch.float16, 96, 1e-2), (torch.float32, 64, 1e-4),
                                                 (torch.float16, 256, 1e-2), (torch.bfloat16, 32, 2e-2)])
def test_dtypes_and_head_dims(dtype: torch.dtype, D: int, tol: float) -> None:
    _run(PATTERNS["heads"] & ~ir.Prefix(100), 2, 4, 2, 3000, 3333, D, dtype, tol)
