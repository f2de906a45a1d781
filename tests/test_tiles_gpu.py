"""The tile model's narrow-key configs on the GPU: ``fixed`` patterns, whose default tiles the
model changes (``patternc.runtime.tiles``), through ``patternc.attention`` forward and backward
against the dense reference. Run with ``pytest -m gpu`` on a CUDA machine with Hopper's shared
memory (elsewhere the rule-based tiles run, and the choice assertion is skipped)."""

from __future__ import annotations

import importlib

import pytest
import torch

import patternc
from patternc import ir

from .test_backward_gpu import run as run_backward
from .test_kernels_forward_gpu import _run as run_forward

pytestmark = pytest.mark.gpu

fwd = importlib.import_module("patternc.runtime.forward")
bwd = importlib.import_module("patternc.runtime.backward")
ST = patternc.load("patternc/stdlib_patterns/sparse_transformer.sap")
FIXED = {"fixed": ST["sparse_transformer_fixed"](), "summary": ST["sparse_transformer_summary"](),
         "fixed_heads": ST["sparse_transformer_fixed_heads"]()}


def narrow(node: ir.Node, nq: int, nk: int, H: int, D: int) -> None:
    """Skip unless the model gives this call narrow key blocks (so the test runs the new tiles)."""
    if not fwd.large_smem("cuda"):
        pytest.skip("the tile model applies on GPUs with Hopper's shared memory")
    base = fwd.default_config(nq, nk, D, torch.bfloat16, False)
    assert fwd.dense_config(node, base, nq, nk, H, D, torch.bfloat16, "cuda").block_k <= 32
    cfg = bwd.dense_config(node, nq, nk, H, D, torch.bfloat16, "cuda")
    assert cfg is not None and cfg.block_k <= 32


@pytest.mark.parametrize("name", list(FIXED))
@pytest.mark.parametrize(("n", "D"), [(4096, 64), (16384, 128)])
def test_forward_narrow_tiles(name: str, n: int, D: int) -> None:
    narrow(FIXED[name], n, n, 4, D)
    run_forward(FIXED[name], 1, 4, 2, n, n, D, torch.bfloat16, 2e-2)


@pytest.mark.parametrize("name", list(FIXED))
@pytest.mark.parametrize(("nq", "nk", "D"), [(16384, 16384, 64), (3000, 7001, 64), (16384, 16384, 128)])
def test_backward_narrow_tiles(name: str, nq: int, nk: int, D: int) -> None:
    narrow(FIXED[name], nq, nk, 4, D)
    run_backward(FIXED[name], 1, 4, 2, nq, nk, D, torch.bfloat16)
