"""Source A/B of the generated backward kernels (session 9, issue #6): named edits of the source
that ``codegen.backward.generate`` writes, each timed under several configs beside the unedited
kernel and FlexAttention, with the gradients compared to the unedited ones. What it asks: why
FlexAttention's own backward config (128x128, 64-wide steps, 8 warps, 3 stages) runs 25% slower
in our kernels than in FlexAttention's on ``block_local`` at D=128.

    SRC_JOBS='16384:128:block_local/block_local' python benchmarks/dev/src_ab.py

Variants (``SRC_VARIANTS``, comma list): ``base``; ``stride``: the row strides of Q, dO, K and V
inside the step loops are the constexpr head dim (the inputs are contiguous); ``nomask``: no
masked-tile loops (valid only for patterns without PARTIAL tiles, e.g. ``block_local``; since
session 9 the runtime leaves them out there itself, ``HAS_PARTIAL``); ``stride+nomask``. Rows
go to stdout and ``$OUT/src_ab.json``.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from typing import Any

import torch
from devcommon import DT, B, H, median_ms, node_of

import patternc.codegen.backward as gen
from patternc.runtime.cache import load_module
from patternc.runtime.forward import forward

rb = importlib.import_module("patternc.runtime.backward")
JOBS = [(int(a), int(b), c) for a, b, c in (s.split(":", 2) for s in os.environ.get(
    "SRC_JOBS", "16384:128:block_local/block_local").split(";"))]
CONFIGS = [tuple(int(x) for x in c.split(",")) for c in os.environ.get(
    "SRC_CONFIGS", "64,64,64,64,64,64,4,2;128,128,64,128,128,64,8,3,0,0,0,1;"
    "128,128,64,128,128,64,8,2,0,0,0,2").split(";")]
VARIANTS = os.environ.get("SRC_VARIANTS", "base,stride,nomask,stride+nomask").split(",")

EDITS: dict[str, list[tuple[str, str]]] = {
    "stride": [(f"{i}[:, None] * stride_{s}", f"{i}[:, None] * D")
               for i, s in (("im", "qm"), ("im", "dom"), ("jn", "kn"), ("jn", "vn"))],
    "nomask": [(f"for {v} in {r}", f"for {v} in tl.static_range(0):  # ") for v, r in (
        ("t", "range(c0, tl.load(NUM + row), nc):"),
        ("u", "range(0, tl.cdiv(tl.load(NUM + row) - c0, nc)"))],
}


def edited(variant: str) -> Any:
    """``runtime.backward.kernels`` with ``variant``'s edits applied to the generated source."""
    def kernels(node: Any, groups: int, steps: int = 0) -> Any:
        source, tables = gen.generate(node, groups, steps)
        for part in variant.split("+"):
            for old, new in EDITS.get(part, []):
                source = source.replace(old, new)
        return load_module("backward", source, source), tables
    return kernels


def measure(args: tuple[Any, ...], config: gen.BackwardConfig, variant: str) -> tuple[Any, float]:
    """Gradients and median ms of ``runtime.backward(*args)`` with ``variant``'s kernels."""
    real = rb.kernels
    rb.kernels = edited(variant)
    try:
        rb._setups.cache_clear()  # the setups hold the loaded module
        rb._cached_setup.cache_clear()
        run = functools.partial(rb.backward, *args, config=config)
        return run(), median_ms(run)
    finally:
        rb.kernels = real
        rb._setups.cache_clear()
        rb._cached_setup.cache_clear()


def job(n: int, d: int, text: str, flex: Any) -> list[dict[str, Any]]:
    from patternc.flex import to_flex

    torch.manual_seed(n + d)
    q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=DT) for _ in range(4))
    node = node_of(text)
    out, lse = forward(q, k, v, node)
    qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))
    fo = flex(qg, kg, vg, block_mask=to_flex(node, n, device="cuda"))
    flex_ms = median_ms(functools.partial(torch.autograd.grad, fo, (qg, kg, vg), do, retain_graph=True))
    rows = []
    for cfg in CONFIGS:
        ref = None
        for variant in VARIANTS:
            got, ms = measure((q, k, v, out, lse, do, node), gen.BackwardConfig(*cfg), variant)
            ref = got if ref is None else ref
            diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, ref))
            rows.append({"n": n, "d": d, "pattern": text, "config": cfg, "variant": variant, "ms": ms,
                         "flex_ms": flex_ms, "max_abs_diff_vs_base": diff})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    from torch.nn.attention.flex_attention import flex_attention

    flex = torch.compile(flex_attention, dynamic=False)
    rows: list[dict[str, Any]] = []
    for n, d, text in JOBS:
        rows += job(n, d, text, flex)
        with open(os.path.join(os.environ.get("OUT", "."), "src_ab.json"), "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
