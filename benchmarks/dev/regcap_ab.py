"""The register-cap rule (``runtime.occupancy``, session 14) against no caps, on every suite
pattern: forward and backward with ``PATTERNC_REG_CAP`` on and off, rounds alternating in one
process, outputs and gradients compared (max abs difference; 0 expected: a cap changes where
values live, not the arithmetic). Patterns where the rule caps no kernel are listed, not timed.

    RC_N=65536 RC_D=64 RC_ROUNDS=2 python benchmarks/dev/regcap_ab.py    # $OUT/regcap_ab.json

``RC_ONLY``: ';'-separated substrings of the suite's pattern names (default: all).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms
from suite_core import all_cases, select

from patternc.runtime import reset
from patternc.runtime.launch import compiled_kernels

rf = importlib.import_module("patternc.runtime.forward")
rb = importlib.import_module("patternc.runtime.backward")
N = int(os.environ.get("RC_N", "65536"))
D = int(os.environ.get("RC_D", "64"))
ROUNDS = int(os.environ.get("RC_ROUNDS", "2"))
ONLY = [s for s in os.environ.get("RC_ONLY", "").split(";") if s]


def use(on: bool) -> None:
    """Caps on or off for the next calls: every cache that holds compiled launches cleared."""
    os.environ["PATTERNC_REG_CAP"] = "1" if on else "0"
    reset()


def capped() -> list[str]:
    """The compiled kernels of this process that run under a register cap."""
    return sorted({f"{name} maxnreg {k.metadata.maxnreg} regs {k.n_regs} spills {k.n_spills}"
                   for name, k in compiled_kernels() if getattr(k.metadata, "maxnreg", None)})


def main() -> None:
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    rows: list[dict[str, Any]] = []
    for case in select(all_cases(), ONLY or None):
        node = case.node
        use(True)
        out, lse = rf.forward(q, k, v, node)
        grads = rb.backward(q, k, v, out, lse, do, node)
        row: dict[str, Any] = {"pattern": case.label, "n": N, "d": D, "capped": capped(), "ms": {}}
        if row["capped"]:
            results = {}
            for _ in range(ROUNDS):
                for on in (False, True):
                    use(on)
                    o, s = rf.forward(q, k, v, node)
                    g = rb.backward(q, k, v, o, s, do, node)
                    results[on] = (o, *g)
                    key = "on" if on else "off"
                    row["ms"].setdefault(f"fwd {key}", []).append(
                        median_ms(lambda node=node: rf.forward(q, k, v, node)))
                    row["ms"].setdefault(f"bwd {key}", []).append(
                        median_ms(lambda o=o, s=s, node=node: rb.backward(q, k, v, o, s, do, node)))
            row["max_abs_diff"] = max(float((a.float() - b.float()).abs().max())
                                      for a, b in zip(results[True], results[False]))
            row["fwd_off_over_on"] = round(min(row["ms"]["fwd off"]) / min(row["ms"]["fwd on"]), 3)
            row["bwd_off_over_on"] = round(min(row["ms"]["bwd off"]) / min(row["ms"]["bwd on"]), 3)
        del out, lse, grads
        add_row(rows, row, "regcap_ab.json")


if __name__ == "__main__":
    main()
