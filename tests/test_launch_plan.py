"""Which launches a call makes (``runtime.forward._launches`` / ``_summary_launches``,
``runtime.backward._setups`` / ``_summary_steps``): a rest without blocks is not launched, and the
first gathered launch then stores instead of merging; a head group is written once and merged
into after that (``runtime.writes``). Results of these plans are checked against
the reference in test_residue.py and test_summary.py."""

from __future__ import annotations

import importlib

import pytest
import torch

from patternc import ir
from patternc.runtime import backward, summary, writes

forward = importlib.import_module("patternc.runtime.forward")  # the package exports a function of that name

S, C = ir.Strided(5), ir.Causal()
ST, SK, AD = writes.STORE, writes.SKIP, writes.ADD
CASES = {  # per launch, per head group: skip / store / add (forward; backward with one KV head per group)
    "strided & causal": (S & C, [(ST,)]),  # all of it gathered: no rest
    "window | strided": ((ir.Window(4, 0) | S) & C, [(ST,), (AD,)]),
    # one group's rest has blocks, the other's gathered part: each stored once, no launch adds
    "heads(window, strided)": (ir.Heads((ir.Window(4, 0), S)) & C, [(ST, SK), (SK, ST)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_residue_launches(name: str) -> None:
    node, modes = CASES[name]
    cfg = forward.default_config(90, 90, 16, torch.float32, True)
    fl = forward._launches(node, 1, 2, 1, 90, 90, 16, torch.float32, "cpu", cfg, "force")
    bs = backward._planned(backward._setups(node, 2, 90, 90, 16, torch.float32, "cpu", None, "force"), 2, 2)
    assert [launch.modes for launch in fl] == [step.modes for step in bs] == modes
    assert [step.accum for step in bs] == [AD in m for m in modes]
    assert all(launch.res is not None for launch in fl[1:]) and fl[-1].res is not None


def test_groups_sharing_a_kv_head_are_written_together() -> None:
    # two query heads over one KV head, in different groups: dK / dV of that KV head take both
    # groups' gradients, so the backward plans the two groups as one (the forward needs not)
    node = CASES["heads(window, strided)"][0]
    bs = backward._planned(backward._setups(node, 2, 90, 90, 16, torch.float32, "cpu", None, "force"), 2, 1)
    assert [step.modes for step in bs] == [(ST, ST), (AD, AD)]


@pytest.mark.parametrize(("node", "modes"), [
    (ir.Fixed(8, 2) & C, [(ST,), (AD,)]), (ir.Diff(ir.Fixed(8, 2), ir.Blocks(8)) & C, [(ST,)]),
    (ir.Heads((ir.Blocks(8), ir.Diff(ir.Fixed(8, 2), ir.Blocks(8)))) & C, [(ST, SK), (SK, ST)])])
def test_summary_launches(node: ir.Node, modes: list[tuple[int, ...]]) -> None:
    dec = summary.decompose(node, 40, 40)
    assert dec is not None
    fl = forward._summary_launches(dec, 1, 2, 1, 40, 16, torch.float32, "cpu")
    bs = backward._summary_steps(dec, 2, 40, 16, torch.float32, "cpu")
    assert len(fl) == len(bs) == len(modes)
    # forward: each group written once; backward: the first step stores, the summary part adds
    # (its dK / dV go through index_add_ in any case)
    assert [launch.modes for launch in fl] == modes
    assert [step.accum for step in bs] == [False] + [True] * (len(modes) - 1)
    assert fl[-1].gather is not None and bs[-1].gather is not None
    assert torch.equal(fl[-1].gather, dec.index("cpu"))
