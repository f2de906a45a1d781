"""Launch order A/B (session 9, issue #6): ``runtime.order.SPREAD`` 0 (every launch heaviest
first, as before session 9) against the rule (near-uniform items in sequence order), forward and
backward of each job timed directly (``runtime.forward`` / ``runtime.backward``, default configs),
alternating over rounds (each keeps its lowest median), outputs of the two orders compared.

    ORDER_JOBS='65536:64:block_local/block_local_causal' python benchmarks/dev/order_ab.py

Rows go to stdout and ``$OUT/order_ab.json``.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from typing import Any

import torch
from devcommon import DT, B, H, median_ms, node_of

from patternc.runtime import order

MODULES = [importlib.import_module(f"patternc.runtime.{m}") for m in ("forward", "backward")]
JOBS = [(int(a), int(b), c) for a, b, c in (s.split(":", 2) for s in os.environ.get(
    "ORDER_JOBS", "65536:64:block_local/block_local_causal").split(";"))]
ROUNDS = int(os.environ.get("ORDER_ROUNDS", "2"))


def fresh(spread: float) -> None:
    """``SPREAD`` set and every cached set-up (which holds its work items) dropped."""
    order.SPREAD = spread
    for mod in MODULES:
        for value in vars(mod).values():
            if hasattr(value, "cache_clear"):
                value.cache_clear()
    MODULES[1]._SCHEDULES.clear()  # type: ignore[attr-defined]


def row(n: int, d: int, text: str) -> dict[str, Any]:
    fwd, bwd = MODULES[0].forward, MODULES[1].backward  # type: ignore[attr-defined]
    torch.manual_seed(n + d)
    q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=DT) for _ in range(4))
    node = node_of(text)
    best: dict[str, float] = {}
    got: dict[str, Any] = {}
    for _ in range(ROUNDS):
        for name, spread in (("sorted", 0.0), ("rule", 2.0)):
            fresh(spread)
            out, lse = fwd(q, k, v, node)
            grads = bwd(q, k, v, out, lse, do, node)
            got[name] = (out, *grads)
            for kind, fn in (("fwd", functools.partial(fwd, q, k, v, node)),
                             ("bwd", functools.partial(bwd, q, k, v, out, lse, do, node))):
                key = f"{name}_{kind}_ms"
                best[key] = min(best.get(key, float("inf")), median_ms(fn))
    fresh(2.0)
    diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(got["sorted"], got["rule"]))
    return {"pattern": text, "n": n, "d": d, **best, "max_abs_diff": diff}


def main() -> None:
    rows = []
    for n, d, text in JOBS:
        rows.append(row(n, d, text))
        print(json.dumps(rows[-1]), flush=True)
        with open(os.path.join(os.environ.get("OUT", "."), "order_ab.json"), "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
