"""One loop over FULL and PARTIAL key blocks against a loop per kind (session 16, issue #6): every
suite pattern's forward with ``runtime.forward.ONE_LOOP`` off (``two``), on (``one``), and on with
the short-row rules' two stages raised to three (``one s3``: ``tiles.ROW_RULES`` at D <= 64),
rounds alternating in one process, outputs compared
with ``two``'s (max abs difference).

    OL_N=65536 OL_D=64 OL_ROUNDS=2 python benchmarks/dev/one_loop_ab.py   # $OUT/one_loop_ab.json

``OL_ONLY``: ';'-separated substrings of the suite's pattern names (default: all);
``OL_VARIANTS``: ``two,one,one s3``. (Session 16's runs also had ``one r3``: the residue
launches' two-stage rule for short rows, ``tiles.RESIDUE_SHORT_ROWS``, turned off; it then went.
The same one loop in the backward's dK/dV and dQ programs lost 1-15% (commit cc7215b's version
of this script, ``OL_BWD=1``; ``results/one_loop_ab_bwd_h100_2026-11-23_s16_2c8c140_*``) and was
reverted.)
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms
from suite_core import all_cases, select

from patternc.runtime import reset, tiles

rf = importlib.import_module("patternc.runtime.forward")
N = int(os.environ.get("OL_N", "65536"))
D = int(os.environ.get("OL_D", "64"))
ROUNDS = int(os.environ.get("OL_ROUNDS", "2"))
ONLY = [s for s in os.environ.get("OL_ONLY", "").split(";") if s]
VARIANTS = os.environ.get("OL_VARIANTS", "two,one,one s3").split(",")
RULES = dict(tiles.ROW_RULES)


def use(variant: str) -> None:
    rf.ONE_LOOP = variant != "two"
    rules = dict(RULES)
    if variant.endswith("s3"):
        rule, _, most, long = rules[64]
        rules[64] = (rule, rule, most, long)  # short rows (and short residue rows) keep three stages
    tiles.ROW_RULES.clear()
    tiles.ROW_RULES.update(rules)
    reset()


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    rows: list[dict[str, Any]] = []
    for case in select(all_cases(), ONLY or None):
        node = case.node
        row: dict[str, Any] = {"pattern": case.label, "n": N, "d": D, "ms": {}, "err": {}}
        ref = None
        for _ in range(ROUNDS):
            for variant in VARIANTS:
                use(variant)
                o = rf.forward(q, k, v, node)[0]
                ref = o if ref is None else ref
                row["err"][variant] = float((o.float() - ref.float()).abs().max())
                row["ms"].setdefault(variant, []).append(
                    round(median_ms(lambda node=node: rf.forward(q, k, v, node)), 4))
        best = {name: min(t) for name, t in row["ms"].items()}
        if "two" in best:
            row["two_over"] = {name: round(best["two"] / t, 3) for name, t in best.items()}
        use("one")
        add_row(rows, row, "one_loop_ab.json")


if __name__ == "__main__":
    main()
