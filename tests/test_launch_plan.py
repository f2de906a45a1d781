"""Which launches a call makes (``runtime.forward._launches`` / ``_summary_launches``,
``runtime.backward._setups`` / ``_summary_steps``): a rest without blocks is not launched, and the
first gathered launch then stores instead of merging. Results of these plans are checked against
the reference in test_residue.py and test_summary.py."""

from __future__ import annotations

import importlib

import pytest
import torch

from patternc import ir
from patternc.runtime import backward, summary

forward = importlib.import_module("patternc.runtime.forward")  # the package exports a function of that name

S, C = ir.Strided(5), ir.Causal()
CASES = {
    "strided & causal": (S & C, 1),  # all of it gathered: no rest
    "window | strided": ((ir.Window(4, 0) | S) & C, 2),
    "heads(window, strided)": (ir.Heads((ir.Window(4, 0), S)) & C, 2),  # one group's rest has blocks
}


@pytest.mark.parametrize("name", list(CASES))
def test_residue_launches(name: str) -> None:
    node, count = CASES[name]
    cfg = forward.default_config(90, 90, 16, torch.float32, True)
    fl = forward._launches(node, 1, 2, 1, 90, 90, 16, torch.float32, "cpu", cfg, "force")
    bs = backward._setups(node, 2, 90, 90, 16, torch.float32, "cpu", None, "force")
    assert len(fl) == len(bs) == count
    # the first launch stores, every later one merges (forward) or adds (backward)
    assert [launch.accum for launch in fl] == [step.accum for step in bs] == [False] + [True] * (count - 1)
    assert all(launch.res is not None for launch in fl[count - 1:])


@pytest.mark.parametrize(("node", "count"), [
    (ir.Fixed(8, 2) & C, 2), (ir.Diff(ir.Fixed(8, 2), ir.Blocks(8)) & C, 1),
    (ir.Heads((ir.Blocks(8), ir.Diff(ir.Fixed(8, 2), ir.Blocks(8)))) & C, 2)])
def test_summary_launches(node: ir.Node, count: int) -> None:
    dec = summary.decompose(node, 40, 40)
    assert dec is not None
    fl = forward._summary_launches(dec, 1, 2, 1, 40, 16, torch.float32, "cpu")
    bs = backward._summary_steps(dec, 2, 40, 16, torch.float32, "cpu")
    assert len(fl) == len(bs) == count
    assert [launch.accum for launch in fl] == [step.accum for step in bs] == [False] + [True] * (count - 1)
    assert fl[-1].gather is not None and bs[-1].gather is not None
    assert torch.equal(fl[-1].gather, dec.index("cpu"))
