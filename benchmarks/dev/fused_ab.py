"""One launch or two for the backward's dK/dV and dQ programs (session 7, issue #6): per (N, D,
pattern), the backward through autograd (as ``benchmarks/suite.py`` times it) with
``runtime.backward._FUSED`` None (the rule, ``FUSE_MAX_PROGRAMS``), True (``bwd_kernel``) and False
(``dkdv_kernel`` + ``dq_kernel``), alternating over rounds (each keeps its lowest median),
FlexAttention's beside them, and the gradients of the two forced modes compared.

    AB_JOBS='4096:64:block_local/block_local;65536:128:block_local/block_local' \
        python benchmarks/dev/fused_ab.py

Rows go to stdout and ``$OUT/fused_ab.json``.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import torch
import triton
from devcommon import DT, B, H, median_ms, with_flex
from suite import configure_dynamo

import patternc

rb = importlib.import_module("patternc.runtime.backward")
JOBS = [(int(a), int(b), c) for a, b, c in (s.split(":", 2) for s in os.environ.get(
    "AB_JOBS", "4096:64:block_local/block_local").split(";"))]
ROUNDS = int(os.environ.get("AB_ROUNDS", "2"))


def row(n: int, d: int, text: str, flex: Any) -> dict[str, Any]:
    torch.manual_seed(n + d)
    q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=DT) for _ in range(4))
    node, bm, (qg, kg, vg) = with_flex(text, n, q, k, v)
    o = patternc.attention(qg, kg, vg, node)
    fo = flex(qg, kg, vg, block_mask=bm)

    def grad(out: torch.Tensor) -> Any:
        return torch.autograd.grad(out, (qg, kg, vg), do, retain_graph=True)

    got: dict[bool | None, Any] = {}
    best: dict[str, float] = {}
    names = {None: "rule_ms", True: "fused_ms", False: "separate_ms"}
    for _ in range(ROUNDS):
        for fused, key in names.items():
            rb._FUSED = fused
            got[fused] = grad(o)
            best[key] = min(best.get(key, float("inf")), median_ms(lambda: grad(o)))
        best["flex_ms"] = min(best.get("flex_ms", float("inf")), median_ms(lambda: grad(fo)))
    rb._FUSED = None
    diff = max(float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))
               for a, b in zip(got[True], got[False]))
    return {"pattern": text, "n": n, "d": d, **best, "max_rel_diff": diff}


def main() -> None:
    from torch.nn.attention.flex_attention import flex_attention

    configure_dynamo()
    flex = torch.compile(flex_attention, dynamic=False)
    rows = []
    for n, d, text in JOBS:
        r = row(n, d, text, flex)
        print(json.dumps(r), flush=True)
        rows.append(r)
        with open(os.path.join(os.environ.get("OUT", "."), "fused_ab.json"), "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "triton": triton.__version__, "rows": rows}, f, indent=1)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
