"""Before / after of the plan-driven tile choice (``patternc.runtime.tiles``) on one GPU: for each
(N, D, pattern) job, our forward and backward under the rule-based config (the model off) and
the model's config, beside compiled FlexAttention on the same ``to_flex`` BlockMask; bf16, B=1,
H=16, ``do_bench`` medians, useful TFLOP/s = ``4 * nnz * D / time`` (x2.5 backward, nnz exact
over the heads from ``patternc.analysis.report``). Outputs are checked against FlexAttention's.
Compilation runs first in ``TILES_WORKERS`` parallel processes (as in ``tiles_sweep.py``).

    TILES_WORKERS=8 python benchmarks/dev/tiles_verify.py     # -> $OUT/tiles_verify.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from tiles_sweep import BLC, FIXED, SUMMARY, B, H, bench, inputs, node_of

T0 = time.perf_counter()
START = time.time()  # a wait file older than this is a previous run's
JOBS = [(65536, 64, FIXED), (65536, 64, SUMMARY), (65536, 64, FIXED.replace("fixed", "fixed_heads")),
        (65536, 128, FIXED), (65536, 128, SUMMARY), (16384, 64, FIXED), (4096, 64, FIXED),
        (4096, 64, SUMMARY), (65536, 64, "band(256)"), (65536, 64, BLC)]


def configs(node: Any, n: int, d: int) -> dict[str, tuple[Any, Any]]:
    """``before`` (the model off) and ``after`` (the runtime's default now) forward / backward configs."""
    import importlib

    from patternc.runtime import tiles

    # the modules (``patternc.runtime.forward`` as an attribute is the function of that name)
    fwd = importlib.import_module("patternc.runtime.forward")
    bwd = importlib.import_module("patternc.runtime.backward")

    out = {}
    for name, on in (("before", False), ("after", True)):
        fwd.dense_config.cache_clear()
        bwd.dense_config.cache_clear()
        tiles.enable(on)
        base = fwd.default_config(n, n, d, torch.bfloat16, False)
        f = fwd.dense_config(node, base, n, n, H, d, torch.bfloat16, "cuda")
        b = bwd.dense_config(node, n, n, H, d, torch.bfloat16, "cuda")
        from patternc.codegen.backward import default_config

        out[name] = (f, b or default_config(d, False))
    tiles.enable(True)
    return out


def job(n: int, d: int, text: str, timed: bool) -> dict[str, Any]:
    from torch.nn.attention.flex_attention import flex_attention

    from patternc import ir
    from patternc.analysis import report
    from patternc.flex import to_flex
    from patternc.runtime.backward import backward
    from patternc.runtime.forward import forward

    torch._dynamo.reset()  # a fresh compile per job: patterns and grad modes exceed the recompile limit
    flex = torch.compile(flex_attention, dynamic=False)
    node = node_of(text)
    q, k, v, do = inputs(n, d)
    heads = H if ir.head_counts(node) > 1 else None
    bm = to_flex(node, n, heads=heads, device="cuda")
    qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
    fo = flex(qg, kg, vg, block_mask=bm)
    gref = torch.autograd.grad(fo, (qg, kg, vg), do, retain_graph=True)
    row: dict[str, Any] = {"n": n, "d": d, "pattern": text}
    if timed:
        row["nnz"] = int(report(node, n, heads=H).nnz) * B
        row["flex_fwd_ms"] = bench(lambda: flex(q, k, v, block_mask=bm))
        row["flex_bwd_ms"] = bench(lambda: torch.autograd.grad(fo, (qg, kg, vg), do, retain_graph=True))
    for name, (cf, cb) in configs(node, n, d).items():
        out, lse = forward(q, k, v, node, config=cf)
        g = backward(q, k, v, out, lse, do, node, config=cb)
        row[name] = {"fwd_config": list(dataclasses.astuple(cf))[:4],
                     "bwd_config": list(dataclasses.astuple(cb))[:8],
                     "fwd_err": float((out.float() - fo.detach().float()).abs().max()),
                     "bwd_err": max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                                    for a, b in zip(g, gref))}
        if timed:
            row[name]["fwd_ms"] = bench(lambda cf=cf: forward(q, k, v, node, config=cf))
            row[name]["bwd_ms"] = bench(
                lambda c=cb, o=out, s=lse: backward(q, k, v, o, s, do, node, config=c))
    if timed:  # the default path (no config) must run the model's choice
        row["default_fwd_ms"] = bench(lambda: forward(q, k, v, node))
    return row


def main() -> None:
    if len(sys.argv) > 1:  # a warm-up worker: compile this shard's jobs
        shard, shards = int(sys.argv[1]), int(sys.argv[2])
        for i, (n, d, text) in enumerate(JOBS):
            if i % shards == shard:
                job(n, d, text, False)
        return
    workers = int(os.environ.get("TILES_WORKERS", "8"))
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, str(i), str(workers)], env=env)
             for i in range(workers)]
    warm_s = float(os.environ.get("TILES_WARM_S", "120"))
    for p in procs:
        try:
            p.wait(timeout=max(1.0, warm_s - (time.perf_counter() - T0)))
        except subprocess.TimeoutExpired:
            p.kill()
    print(f"warm phase {time.perf_counter() - T0:.0f} s", flush=True)
    wait = os.environ.get("TILES_WAIT_FILE")  # another GPU job (tests) that must end before timing
    while wait and not (os.path.exists(wait) and os.path.getmtime(wait) >= START) \
            and time.perf_counter() - T0 < warm_s + 120:
        time.sleep(1)
    import triton

    rows = []
    deadline = float(os.environ.get("TILES_DEADLINE", "250"))
    for n, d, text in JOBS:
        if time.perf_counter() - T0 > deadline:
            print("deadline", flush=True)
            break
        try:
            row = job(n, d, text, True)
        except Exception as e:  # record and go on
            row = {"n": n, "d": d, "pattern": text, "fail": repr(e)[:200]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(os.path.join(os.environ.get("OUT", "."), "tiles_verify.json"), "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "triton": triton.__version__,
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
