"""Direct launches on the GPU (patternc.runtime.launch): repeated calls, which take the direct path
after the first, and inputs whose specialization differs (a misaligned view) stay correct against
the reference. Run with ``pytest -m gpu`` on a CUDA machine."""

from __future__ import annotations

import math

import pytest
import torch

import patternc
from patternc import ir
from patternc.runtime import launch

from .test_backward_support import assert_close, chunked_ref_grads
from .test_kernels_forward_gpu import PATTERNS, chunked_reference

pytestmark = pytest.mark.gpu


def inputs(shape: tuple[int, ...], seed: int, misaligned: bool) -> torch.Tensor:
    """Random bf16 of ``shape``; ``misaligned``: a view starting one element into its storage."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    n = math.prod(shape)
    flat = torch.randn(n + 1, device="cuda", generator=g).to(torch.bfloat16)
    return (flat[1:] if misaligned else flat[:n]).view(shape)


@pytest.mark.parametrize("name", ["longformer", "bigbird", "strided", "heads"])
def test_repeated_calls_and_misaligned_inputs(name: str) -> None:
    assert launch.fast_enabled()
    node: ir.Node = PATTERNS[name]
    B, H, n, D = 1, 4, 3000, 64
    for call, misaligned in enumerate((False, False, True, False, True)):
        q, k, v, do = (inputs((B, H, n, D), 10 * call + i, misaligned) for i in range(4))
        if misaligned:
            assert q.data_ptr() % 16
        qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))
        out = patternc.attention(qg, kg, vg, node)
        want, _ = chunked_reference(q, k, v, node)
        torch.testing.assert_close(out.float(), want, atol=2e-2, rtol=2e-2)
        got = torch.autograd.grad(out, (qg, kg, vg), do)
        ref = chunked_ref_grads(q, k, v, do, node, 1.0 / math.sqrt(D))
        for a, b, g in zip(got, ref, ("dq", "dk", "dv")):
            assert_close(a, b, torch.bfloat16, f"{g} of {name}, call {call}")
