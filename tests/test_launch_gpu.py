"""Direct launches on the GPU (patternc.runtime.launch): repeated calls, which take the direct path
after the first, and inputs whose specialization differs (a misaligned view, an int argument equal
to 1, which Triton compiles as a constant, then 17) stay correct against the reference. Run with
``pytest -m gpu`` on a CUDA machine."""

from __future__ import annotations

import math

import pytest
import torch

import patternc
from patternc import ir
from patternc.runtime import launch, reset
from patternc.runtime.expand import expand_runs

from .test_backward_gpu import run as run_backward
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


@pytest.fixture
def fresh_launchers(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kernel compiled by earlier tests of this process: the calls below decide what compiles."""
    monkeypatch.setattr(launch, "_LAUNCHERS", {})


@pytest.mark.usefixtures("fresh_launchers")
def test_int_argument_one_then_one_mod_16() -> None:
    # Triton compiles an int argument equal to 1 as the constant 1; a later call with 17 or 33 (1
    # mod 16) must not reuse that kernel. Seen: a 1-run plan expansion (test_random_patterns_and_shapes)
    # then one of 3489 runs (test_16k_tokens[bigbird]) read its counts from the wrong row and wrote
    # far past its buffer (illegal memory access / invalid address space faults)
    for n in (1, 17, 33, 1, 17):
        t = torch.arange(n)
        prog = torch.stack([t, 5 + t, torch.ones_like(t), torch.zeros_like(t)]).cuda()  # run t: [5 + t] at t
        out = torch.zeros(n + 256, dtype=torch.int32, device="cuda")  # slack for a wrong kernel's writes
        expand_runs(out, prog)
        assert out[:n].tolist() == (5 + t).tolist() and not out[n:].any(), f"{n} runs"


@pytest.mark.usefixtures("fresh_launchers")
@pytest.mark.parametrize("later", [17, 129])
def test_backward_after_a_one_row_call(later: int) -> None:
    # seen in test_random_patterns_and_shapes: the backward preprocess compiled at nq = 1 reused at
    # nq = 129 wrote delta and the LSE of row 0 only (NaN / wrong dQ)
    for nq in (1, later):
        run_backward(ir.Full(), 1, 1, 1, nq, nq, 16, torch.float16)


def _fresh_calls(monkeypatch: pytest.MonkeyPatch, cap: str) -> None:
    """Register caps on (``"1"``) or off for the next calls, nothing compiled or prepared before."""
    monkeypatch.setenv("PATTERNC_REG_CAP", cap)
    monkeypatch.setattr(launch, "_LAUNCHERS", {})
    reset()


@pytest.mark.parametrize("text", ["blocks(256) & causal", "(window(64, 0) | strided(64)) & causal"])
def test_register_caps_keep_results(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    # runtime.occupancy: a capped kernel computes the same values (bit for bit), and it is capped
    # exactly where the uncapped kernel's registers, not its shared memory, bind its programs per SM
    from patternc.runtime import occupancy
    from patternc.runtime.backward import backward
    from patternc.runtime.forward import forward

    node = patternc.pattern(text)
    q, k, v, do = (inputs((1, 4, 8192, 64), i, False) for i in range(4))
    got, caps, want = {}, {}, set()
    for cap in ("0", "1"):
        _fresh_calls(monkeypatch, cap)
        out, lse = forward(q, k, v, node)
        got[cap] = (out, *backward(q, k, v, out, lse, do, node))
        kernels = [x for name, x in launch.compiled_kernels()
                   if name in ("attn_fwd", "dkdv_kernel", "dq_kernel")]
        assert kernels
        caps[cap] = sorted(getattr(x.metadata, "maxnreg", None) or 0 for x in kernels)
        if cap == "0":
            smem = occupancy.smem_per_sm(torch.cuda.current_device())
            want = {occupancy.cap_for(x.n_regs, x.metadata.num_warps, x.metadata.shared, smem)
                    for x in kernels}
    assert caps["0"] == [0] * len(caps["0"])
    assert set(caps["1"]) - {0} <= want - {None}  # only the rule's caps (one may spill too much)
    assert bool(set(caps["1"]) - {0}) == bool(want - {None})  # and at least one where it asks
    for a, b in zip(got["0"], got["1"]):
        assert torch.equal(a, b)
