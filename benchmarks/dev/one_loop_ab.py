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

from devcommon import forward_ab

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
    forward_ab(VARIANTS, use, "one_loop_ab.json", N, D, ROUNDS, ONLY)
    use("one")

if __name__ == "__main__":
    main()
