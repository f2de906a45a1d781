"""Residue-class execution vs plain blocks on one GPU (no FlexAttention: its times for the same
patterns are in benchmarks/RESULTS.md), bf16, B=1, H=16, D=64, self-attention.

    NS=16384,65536 python benchmarks/bench_residue.py

Per pattern and N: forward (``patternc.runtime.forward``, host work included) and bare backward
kernels (``patternc.runtime.backward.backward``), default mode (``auto``) and, where ``auto``
gathers some branch, ``residue_mode="off"``. Prints one JSON line per row and writes
``$OUT/bench_residue.json``.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Any

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_forward import PATTERNS, bench, nnz_of, strategy_of

from patternc.codegen.backward import default_config as bwd_config
from patternc.runtime.backward import backward
from patternc.runtime.forward import default_config, forward

B, H, D = 1, 16, 64
DT = torch.bfloat16


def measure(name: str, n: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            do: torch.Tensor) -> dict[str, Any]:
    """One row: forward and backward kernels, default mode and (where it gathers) plain blocks."""
    node = PATTERNS[name]
    nnz = nnz_of(node, n)
    r: dict[str, Any] = dict(N=n, pattern=name, density=nnz / n / n,
                             fwd_strategy=strategy_of(node, n, default_config(n, n, D, DT, False)),
                             bwd_strategy=strategy_of(node, n, bwd_config(D, False)))
    out, lse = forward(q, k, v, node)
    r["fwd_ms"] = bench(lambda: forward(q, k, v, node))
    r["bwd_ms"] = bench(lambda: backward(q, k, v, out, lse, do, node))
    if r["fwd_strategy"] != "blocks":
        plain, _ = forward(q, k, v, node, residue_mode="off")
        r["fwd_max_diff_vs_plain"] = float((out.float() - plain.float()).abs().max())
        r["fwd_plain_ms"] = bench(lambda: forward(q, k, v, node, residue_mode="off"))
    if r["bwd_strategy"] != "blocks":
        r["bwd_plain_ms"] = bench(lambda: backward(q, k, v, out, lse, do, node, residue_mode="off"))
    r["fwd_tflops"] = 4 * nnz * D * H * B / r["fwd_ms"] / 1e9
    r["bwd_tflops"] = 2.5 * 4 * nnz * D * H * B / r["bwd_ms"] / 1e9
    return r


def main() -> None:
    ns = [int(x) for x in os.environ.get("NS", "16384,65536").split(",")]
    names = [p for p in PATTERNS if not os.environ.get("ONLY") or os.environ["ONLY"] in p]
    meta = dict(date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
    rows = []
    torch.manual_seed(0)
    for n in ns:
        q, k, v, do = (torch.randn(B, H, n, D, device="cuda", dtype=DT) for _ in range(4))
        for name in names:
            rows.append(measure(name, n, q, k, v, do))
            print(json.dumps(rows[-1]), flush=True)
            with open(os.path.join(os.environ.get("OUT", "."), "bench_residue.json"), "w") as f:
                json.dump(dict(meta=meta, rows=rows), f, indent=1)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
