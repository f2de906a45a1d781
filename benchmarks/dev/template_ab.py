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

from devcommon import forward_ab

import patternc.codegen.forward as gf
from patternc.runtime import reset

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
    forward_ab(("old", "new"), use, "template_ab.json", N, D, ROUNDS, ONLY)
    use("new")

if __name__ == "__main__":
    main()
