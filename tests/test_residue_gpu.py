"""Residue-class execution forced on a GPU at 16k tokens: forward (output, LSE) against a chunked
fp32 reference and gradients against float64 autograd of the reference formula. Run with
``pytest -m gpu`` on a CUDA machine."""

from __future__ import annotations

import pytest
import torch

from patternc import ir

from .test_backward_gpu import run as run_backward
from .test_kernels_forward_gpu import _run as run_forward

pytestmark = pytest.mark.gpu

G16 = ir.TokenList.of(ir.Range(0, 16))
PATTERNS = {
    "strided": (ir.Window(127, 0) | ir.Strided(128)) & ir.Causal(),
    "stride": ir.Strided(256) & ir.Causal(),  # 64 classes of 64 rows: one loop over both kinds
    "dilated": ir.Dilated(256, 2) | ir.Global(G16),
    "dilated_causal": ir.Dilated(100, 3) & ir.Causal() | ir.Window(5, 5),
    "heads": ir.Heads((ir.Band(128), ir.Strided(64) & ir.Causal() | ir.Window(31, 0)))
    | ir.Cols(ir.TokenList.of(0, 1)),
}


@pytest.fixture(autouse=True)
def _force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATTERNC_RESIDUE", "force")


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize(("nq", "nk"), [(16384, 16384), (1000, 16001)])
def test_forward_forced_residue(name: str, nq: int, nk: int) -> None:
    run_forward(PATTERNS[name], 1, 4, 2, nq, nk, 64, torch.bfloat16, 2e-2)


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize(("nq", "nk"), [(16384, 16384), (1000, 16001)])
def test_backward_forced_residue(name: str, nq: int, nk: int) -> None:
    run_backward(PATTERNS[name], 1, 4, 2, nq, nk, 64, torch.bfloat16)
