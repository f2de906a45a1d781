"""Per-pattern forward tile choice (``patternc.runtime.forward.dense_config``): dense patterns take
the larger tiles on the GPU, sparse ones keep the default; the interpreter and fp32 never change."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
import torch

from patternc import ir

# the module (``patternc.runtime.forward`` the attribute is the function of the same name)
fwd = importlib.import_module("patternc.runtime.forward")


@pytest.fixture
def on_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the choice itself is host code: pretend the kernels run on a GPU
    monkeypatch.setattr(fwd, "interpreting", lambda: False)
    fwd.dense_config.cache_clear()
    yield
    fwd.dense_config.cache_clear()


@pytest.mark.usefixtures("on_gpu")
@pytest.mark.parametrize(("node", "dense"), [
    (ir.Causal(), True), (ir.Prefix(3000) | ir.Causal(), True), (ir.Full(), True),
    (ir.Band(256), False), (ir.Strided(128) & ir.Causal() | ir.Window(127, 0), False),
    (ir.Heads((ir.Causal(), ir.Band(64))), False),
])
def test_dense_patterns_take_the_large_tiles(node: ir.Node, dense: bool) -> None:
    base = fwd.default_config(8192, 8192, 64, torch.bfloat16, False)
    got = fwd.dense_config(node, base, 8192, 8192, 4, 64, torch.bfloat16)
    assert got == (fwd.DENSE_D64 if dense else base)


@pytest.mark.usefixtures("on_gpu")
def test_large_tiles_only_for_16_bit_small_heads_and_long_sides() -> None:
    for D, dtype, nq in ((128, torch.bfloat16, 8192), (64, torch.float32, 8192), (64, torch.float16, 100)):
        base = fwd.default_config(nq, 8192, D, dtype, False)
        assert fwd.dense_config(ir.Causal(), base, nq, 8192, 4, D, dtype) == base


def test_interpreter_keeps_its_blocks() -> None:
    base = fwd.default_config(8192, 8192, 64, torch.bfloat16, True)
    assert fwd.dense_config(ir.Causal(), base, 8192, 8192, 4, 64, torch.bfloat16) == base
