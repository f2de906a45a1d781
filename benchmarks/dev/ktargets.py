"""Issue-6 floors for our kernels alone (no FlexAttention, so no compiles): forward and backward
useful TFLOP/s of every anchor pattern at 64k tokens, D=64 and D=128, bf16, B=1, H=16, with the
default configs; at D=128 also the forward with the earlier 128x64 / 8-warp tiles.

    python benchmarks/dev/ktargets.py        # JSON to $OUT/ktargets.json
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from functools import partial

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from anchors import PATTERNS

from patternc.analysis import report
from patternc.runtime.backward import backward
from patternc.runtime.forward import ForwardConfig

rf = importlib.import_module("patternc.runtime.forward")
B, H, N = 1, 16, int(os.environ.get("N", "65536"))


def bench(fn: Callable[[], object]) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median"))


def main() -> None:
    rows = []
    for D in (64, 128):
        q, k, v, do = (torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        for name, node in PATTERNS.items():
            nnz = int(report(node, N).nnz)
            r = dict(pattern=name, N=N, D=D)
            out, lse = rf.forward(q, k, v, node)
            r["fwd_ms"] = bench(partial(rf.forward, q, k, v, node))
            r["fwd_tflops"] = 4 * nnz * D * H * B / r["fwd_ms"] / 1e9
            if D == 128:
                old = ForwardConfig(128, 64, 8, 2)  # the D=128 default before this session's sweep
                r["fwd_128x64w8_ms"] = bench(partial(rf.forward, q, k, v, node, config=old))
            r["bwd_ms"] = bench(partial(backward, q, k, v, out, lse, do, node))
            r["bwd_tflops"] = 2.5 * 4 * nnz * D * H * B / r["bwd_ms"] / 1e9
            rows.append(r)
            print(" | ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in r.values()), flush=True)
    with open(os.path.join(os.environ.get("OUT", "."), "ktargets.json"), "w") as f:
        json.dump(dict(rows=rows, gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                       triton=triton.__version__), f, indent=1)


if __name__ == "__main__":
    main()
