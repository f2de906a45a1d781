"""Residue classes fastest in the backward's gathered launches (session 17, issue #6): every
pattern run with residue classes, its backward with ``runtime.backward.CLASSES_FAST`` off
(``items``: work items vary fastest, classes one after another, main before this session) and on
(``cls``: programs running together read neighbouring classes' rows, which are adjacent in
memory), rounds alternating in one process, gradients compared with ``items``' (max abs
difference).

    CF_N=65536 CF_D=64 CF_ROUNDS=2 python benchmarks/dev/classes_fast_ab.py   # $OUT/classes_fast_ab.json

``CF_ONLY``: ';'-separated substrings of the suite's pattern names (default: those that gather).
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
N = int(os.environ.get("CF_N", "65536"))
D = int(os.environ.get("CF_D", "64"))
ROUNDS = int(os.environ.get("CF_ROUNDS", "2"))
ONLY = [s for s in os.environ.get("CF_ONLY", "stride;strided;dilated;longformer_heads;"
                                  "(window(127, 0) | strided(128)) & causal").split(";") if s]
VARIANTS = ("items", "cls")


def use(variant: str) -> None:
    rb.CLASSES_FAST = variant == "cls"
    reset()


def main() -> None:
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    rows: list[dict[str, Any]] = []
    for case in select(all_cases(), ONLY):
        node = case.node
        out, lse = rf.forward(q, k, v, node)
        row: dict[str, Any] = {"pattern": case.label, "n": N, "d": D, "bwd_ms": {}, "err": {}}
        ref = None
        for _ in range(ROUNDS):
            for variant in VARIANTS:
                use(variant)
                g = rb.backward(q, k, v, out, lse, do, node)
                ref = g if ref is None else ref
                row["err"][variant] = max(float((a.float() - b.float()).abs().max()) for a, b in zip(g, ref))
                row["bwd_ms"].setdefault(variant, []).append(
                    round(median_ms(lambda n=node, o=out, s=lse: rb.backward(q, k, v, o, s, do, n)), 4))
        best = {name: min(t) for name, t in row["bwd_ms"].items()}
        row["items_over"] = {name: round(best["items"] / t, 3) for name, t in best.items()}
        add_row(rows, row, "classes_fast_ab.json")
    use("items")


if __name__ == "__main__":
    main()
