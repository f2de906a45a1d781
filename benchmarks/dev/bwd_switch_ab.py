"""A switch of ``patternc.runtime.backward`` on and off (session 17, issue #6): each pattern's
backward with ``BS_SWITCH`` set to each of ``BS_VALUES`` in turn, rounds alternating in one
process, gradients compared with the first value's (max abs difference).

    BS_SWITCH=DQ_STATS BS_N=65536 BS_D=64 python benchmarks/dev/bwd_switch_ab.py   # $OUT/bwd_switch_ab.json

* ``DQ_STATS``: the dQ launch computes the row statistics, no preprocess launch (adopted).
* ``CLASSES_FAST``: the gathered launches run residue classes fastest (tried in commit 76aefba,
  removed: ``results/classes_fast_ab_h100_2026-11-23_s17_*``).

``BS_ONLY``: ';'-separated substrings of the suite's pattern names (default: all).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms
from suite_core import all_cases, select

from patternc.runtime import reset

rf = importlib.import_module("patternc.runtime.forward")
rb = importlib.import_module("patternc.runtime.backward")
SWITCH = os.environ.get("BS_SWITCH", "DQ_STATS")
VALUES = [v == "True" for v in os.environ.get("BS_VALUES", "False,True").split(",")]
N = int(os.environ.get("BS_N", "65536"))
D = int(os.environ.get("BS_D", "64"))
ROUNDS = int(os.environ.get("BS_ROUNDS", "2"))
ONLY = [s for s in os.environ.get("BS_ONLY", "").split(";") if s]


def use(value: bool) -> None:
    setattr(rb, SWITCH, value)
    reset()


def main() -> None:
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    rows: list[dict[str, Any]] = []
    default = getattr(rb, SWITCH)
    for case in select(all_cases(), ONLY or None):
        node = case.node
        out, lse = rf.forward(q, k, v, node)
        row: dict[str, Any] = {"pattern": case.label, "n": N, "d": D, "switch": SWITCH, "bwd_ms": {},
                               "err": {}}
        ref = None
        for _ in range(ROUNDS):
            for value in VALUES:
                use(value)
                g = rb.backward(q, k, v, out, lse, do, node)
                ref = g if ref is None else ref
                row["err"][str(value)] = max(float((a.float() - b.float()).abs().max())
                                             for a, b in zip(g, ref))
                row["bwd_ms"].setdefault(str(value), []).append(
                    round(median_ms(lambda n=node, o=out, s=lse: rb.backward(q, k, v, o, s, do, n)), 4))
        best = {name: min(t) for name, t in row["bwd_ms"].items()}
        first = best[str(VALUES[0])]
        row["first_over"] = {name: round(first / t, 3) for name, t in best.items()}
        add_row(rows, row, "bwd_switch_ab.json")
    use(default)


if __name__ == "__main__":
    main()
