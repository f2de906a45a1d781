"""Where a backward's time goes (session 5, issue #6): per pattern, the backward timed as the suite
times it (``torch.autograd.grad`` through ``patternc.attention``), as a direct call of
``runtime.backward``, FlexAttention's beside them, and the CUDA kernels of a few autograd
backwards under ``torch.profiler`` (name, count, mean us); the same kernel lists for the
forward (session 6: which launch of a multi-launch forward, e.g. ``longformer_heads``, costs what).

    PROBE_N=16384 PROBE_D=64 PROBE_PATTERNS='sparse_transformer/sparse_transformer_block' \
        python benchmarks/dev/probe_bwd.py

Rows go to stdout and ``$OUT/probe_bwd_n{N}_d{D}.json``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import torch
from devcommon import gpu_rows, median_ms, with_flex

import patternc
from patternc.runtime.backward import backward
from patternc.runtime.forward import forward

N = int(os.environ.get("PROBE_N", "16384"))
D = int(os.environ.get("PROBE_D", "64"))
PATTERNS = os.environ.get("PROBE_PATTERNS", "sparse_transformer/sparse_transformer_block").split(";")


def kernels(fn: Any, reps: int = 5) -> dict[str, Any]:
    """CUDA kernels of ``reps`` calls: name -> (count per call, mean us), and under ``"order"``
    each launch of one call in launch order, ``[name, mean us over the calls]`` (which launch of a
    multi-launch call costs what: the rest's head groups, a residue or summary launch)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    events = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                    key=lambda e: e.time_range.start)
    acc: dict[str, list[float]] = defaultdict(list)
    for e in events:
        acc[e.name[:60]].append(e.device_time)
    out: dict[str, Any] = {k: (len(v) // reps, sum(v) / len(v)) for k, v in acc.items()}
    per_call = len(events) // reps
    if per_call:
        out["order"] = [[events[i].name[:40],
                         sum(events[c * per_call + i].device_time for c in range(reps)) / reps]
                        for i in range(per_call)]
    return out


def probe(text: str, flex: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
          do: torch.Tensor) -> dict[str, Any]:
    node, bm, (qg, kg, vg) = with_flex(text, N, q, k, v)
    o = patternc.attention(qg, kg, vg, node)
    fo = flex(qg, kg, vg, block_mask=bm)

    def grad(out: torch.Tensor) -> Any:
        return torch.autograd.grad(out, (qg, kg, vg), do, retain_graph=True)

    out, lse = forward(q, k, v, node)
    return {"pattern": text, "n": N, "d": D,
            "ours_fwd": median_ms(lambda: forward(q, k, v, node)),
            "flex_fwd": median_ms(lambda: flex(q, k, v, block_mask=bm)),
            "ours_bwd_autograd": median_ms(lambda: grad(o)),
            "ours_bwd_direct": median_ms(lambda: backward(q, k, v, out, lse, do, node)),
            "flex_bwd_autograd": median_ms(lambda: grad(fo)),
            "ours_kernels": kernels(lambda: grad(o)),
            "flex_kernels": kernels(lambda: grad(fo)),
            "ours_fwd_kernels": kernels(lambda: forward(q, k, v, node)),
            "flex_fwd_kernels": kernels(lambda: flex(q, k, v, block_mask=bm))}


def main() -> None:
    gpu_rows(PATTERNS, N, D, probe, f"probe_bwd_n{N}_d{D}.json")


if __name__ == "__main__":
    main()
