"""The summary gather (``patternc.runtime.summary``, forced on) on a GPU: forward (output, LSE)
against a chunked fp32 reference and gradients against float64 autograd of the reference
formula, at 16k tokens and with a short query side. Run with ``pytest -m gpu`` on a CUDA machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from patternc import ir
from patternc.runtime import summary

from .test_backward_gpu import run as run_backward
from .test_kernels_forward_gpu import _run as run_forward
from .test_summary import spy_on_summary

pytestmark = pytest.mark.gpu

F, BL, C = ir.Fixed(128, 8), ir.Blocks(128), ir.Causal()
PATTERNS = {
    "fixed": F & C,
    "summary": ir.Diff(F, BL) & C,
    "fixed_heads": ir.Heads((BL, ir.Diff(F, BL))) & C,
}


@pytest.fixture(autouse=True)
def _on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(summary, "_MODE", "force")
    calls = spy_on_summary(monkeypatch)
    yield
    assert calls, "the summary path was not taken"


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize(("nq", "nk", "D"), [(16384, 16384, 64), (1000, 16001, 128)])
def test_forward_summary_gather(name: str, nq: int, nk: int, D: int) -> None:
    run_forward(PATTERNS[name], 1, 4, 2, nq, nk, D, torch.bfloat16, 2e-2)


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize(("nq", "nk"), [(16384, 16384), (1000, 16001)])
def test_backward_summary_gather(name: str, nq: int, nk: int) -> None:
    run_backward(PATTERNS[name], 1, 4, 2, nq, nk, 64, torch.bfloat16)
