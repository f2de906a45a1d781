"""The plan expansion kernel (patternc.runtime.expand): on Triton's interpreter here, on the GPU
with ``pytest -m gpu``, it writes the same index tensors as the vectorized host expansion, for
random plans moved as the runtime moves them (all four tables in one program)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from patternc import ir
from patternc.lower import lower
from patternc.plan import Expansion, _moved
from patternc.runtime.expand import expand_runs

from .strategies import lengths, patterns
from .test_lower import block_sizes


def kernel_tables(exp: Expansion, device: str) -> list[torch.Tensor]:
    flat = torch.zeros(exp.size, dtype=torch.int32, device=device)
    expand_runs(flat, exp.prog.to(device))
    return [flat[b:b + G * R * W].view(G, R, W) for (G, R, W), b in zip(exp.shapes, exp.begins)]


@settings(max_examples=15, deadline=None)
@given(patterns(heads=True, max_leaves=3), lengths(max_n=60), block_sizes)
def test_kernel_writes_what_the_host_expansion_writes(node: ir.Node, nqk: tuple[int, int], bq: int) -> None:
    plan = lower(node, *nqk, block_q=bq, block_k=bq, heads=ir.head_counts(node))
    exp = _moved([plan.forward, plan.backward], "cpu")[0].expansion
    assert exp is not None
    for got, want, sort in zip(kernel_tables(exp, "cpu"), exp.tables, exp.sort_rows):
        if not sort:  # sorted rows are the host's follow-up, the same on every device
            assert torch.equal(got, want)


@pytest.mark.gpu
@pytest.mark.parametrize("source", ["causal", "band(256) | global([0..16]) | random_blocks(3, 64)",
                                    "dilated(256, 2) | global([0..16])", "heads(band(64), strided(128))",
                                    "fixed(128, 8) & causal", "full"])
@pytest.mark.parametrize("n, nk", [(1000, 963), (65536, 65536)])
def test_moved_plans_expand_on_the_gpu_as_on_the_host(source: str, n: int, nk: int) -> None:
    import patternc

    plan = lower(patternc.pattern(source), n, nk)
    moved = plan.to("cuda").expanded()
    assert moved.forward.expansion is moved.backward.expansion
    for a, b in ((plan.forward, moved.forward), (plan.backward, moved.backward)):
        for want, got in ((a.idx, b.idx), (a.full_idx, b.full_idx), (a.num, b.num), (a.full_num, b.full_num)):
            assert got.is_cuda and torch.equal(got.cpu(), want)


@pytest.mark.parametrize("source, mirrored", [("band(5) | cols([0..2]) | rows([0..2])", True),
                                               ("causal", False)])
def test_a_symmetric_plan_moves_and_expands_one_set_of_tables(source: str, mirrored: bool) -> None:
    import patternc

    plan = lower(patternc.pattern(source), 100, 100, block_q=8, block_k=8)
    moved = plan.to("meta")  # a device without data: the structure is what is checked here
    assert moved.forward.expansion is moved.backward.expansion
    assert moved.forward.expansion is not None
    assert len(moved.forward.expansion.shapes) == (2 if mirrored else 4)
    assert moved.backward.slot == (0 if mirrored else 1)


def test_a_moved_plan_carries_only_counts_and_the_program() -> None:
    import patternc

    plan = lower(patternc.pattern("causal | cols([0..3])"), 300, 300, block_q=16, block_k=16)
    moved = plan.to("meta")
    for a, b in ((plan.forward, moved.forward), (plan.backward, moved.backward)):
        assert b.num.device.type == b.full_num.device.type == "meta"
        assert b.num.dtype == a.num.dtype == torch.int32 and b.num.shape == a.num.shape
        assert b.runs is a.runs and b.full_runs is a.full_runs  # the runs stay on the host
    exp = moved.forward.expansion
    assert exp is not None and exp.prog.device.type == "meta" and exp.prog.shape[0] == 4
    tables = (moved.forward.num, moved.forward.full_num, moved.backward.num, moved.backward.full_num)
    assert all(a is b for a, b in zip(exp.nums, tables, strict=True))
