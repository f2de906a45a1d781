"""The forward template against another version of it (session 17, issue #6): every listed suite
pattern's forward with ``codegen.forward``'s template as checked out (``new``) and with the one
of another copy of ``patternc/codegen/forward.py`` (``old``, e.g. from ``git show
REV:patternc/codegen/forward.py``), rounds alternating in one process, outputs compared with
``old``'s (max abs difference).

    TA_OLD=/tmp/old.py TA_N=65536 TA_D=64 python benchmarks/dev/template_ab.py   # $OUT/template_ab.json

``TA_ONLY``: ';'-separated substrings of the suite's pattern names (default: all).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms
from suite_core import all_cases, select

import patternc.codegen.forward as gf
from patternc.runtime import reset

rf = importlib.import_module("patternc.runtime.forward")
N = int(os.environ.get("TA_N", "65536"))
D = int(os.environ.get("TA_D", "64"))
ROUNDS = int(os.environ.get("TA_ROUNDS", "2"))
ONLY = [s for s in os.environ.get("TA_ONLY", "").split(";") if s]


def _old() -> tuple[str, Any]:
    spec = importlib.util.spec_from_file_location("old_forward_codegen", os.environ["TA_OLD"])
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod._KERNEL, f"{mod.VERSION}-old"


TEMPLATES = {"new": (gf._KERNEL, gf.VERSION), "old": _old()}


def use(name: str) -> None:
    gf._KERNEL, gf.VERSION = TEMPLATES[name]  # type: ignore[assignment]
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
            for name in ("old", "new"):
                use(name)
                o = rf.forward(q, k, v, node)[0]
                ref = o if ref is None else ref
                row["err"][name] = float((o.float() - ref.float()).abs().max())
                row["ms"].setdefault(name, []).append(
                    round(median_ms(lambda n=node: rf.forward(q, k, v, n)), 4))
        best = {name: min(t) for name, t in row["ms"].items()}
        row["old_over_new"] = round(best["old"] / best["new"], 3)
        add_row(rows, row, "template_ab.json")
    use("new")


if __name__ == "__main__":
    main()
