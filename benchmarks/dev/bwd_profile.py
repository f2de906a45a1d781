"""Where a short sequence's backward goes (session 14, issue #6): per pattern, the GPU kernels of
one ``torch.autograd.grad`` through ``patternc.attention`` (names, launches, device time per call,
from ``torch.profiler``), the host time to submit one call while the GPU is kept busy, and the
``do_bench`` median, beside the same for FlexAttention (``to_flex`` BlockMask).

    BP_N=4096 BP_D=64 BP_PATTERNS='dilated_sliding_window/dilated_sliding_window' \\
        python benchmarks/dev/bwd_profile.py    # $OUT/bwd_profile.json
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from devcommon import DT, H, add_row, configure_dynamo, median_ms, with_flex
from torch.profiler import ProfilerActivity, profile

import patternc

N = int(os.environ.get("BP_N", "4096"))
D = int(os.environ.get("BP_D", "64"))
PATTERNS = os.environ.get("BP_PATTERNS", "dilated_sliding_window/dilated_sliding_window;"
                          "dilated_sliding_window/dilated_sliding_window_causal;"
                          "sparse_transformer/sparse_transformer_block;block_local/block_local;"
                          "block_local/block_local_causal").split(";")
CALLS = 20


def kernels(fn: Callable[[], Any]) -> dict[str, Any]:
    """Device time per call of each kernel ``fn`` launches (us), its launches per call, the total."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            fn()
        torch.cuda.synchronize()
    per: dict[str, list[float]] = collections.defaultdict(list)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            per[e.name[:60]].append(e.device_time)
    rows = {name: (round(sum(t) / CALLS, 1), len(t) / CALLS) for name, t in per.items()}
    return {"kernels": rows, "device_us": round(sum(v[0] for v in rows.values()), 1)}


def host_us(fn: Callable[[], Any]) -> float:
    """Host time to submit one call while the GPU is busy (a long sleep kernel queued first)."""
    fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU time ahead of the calls
    t = time.perf_counter()
    for _ in range(CALLS):
        fn()
    dt = (time.perf_counter() - t) / CALLS * 1e6
    torch.cuda.synchronize()
    return round(dt, 1)


def main() -> None:
    from torch.nn.attention.flex_attention import flex_attention

    configure_dynamo()
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    rows: list[dict[str, Any]] = []
    for text in PATTERNS:
        node, bm, (qg, kg, vg) = with_flex(text, N, q, k, v)
        out = patternc.attention(qg, kg, vg, node)
        fo = flex(qg, kg, vg, block_mask=bm)
        row: dict[str, Any] = {"pattern": text, "n": N, "d": D}
        for name, o in (("ours", out), ("flex", fo)):
            def grad(o: torch.Tensor = o, inputs: tuple[torch.Tensor, ...] = (qg, kg, vg)) -> Any:
                return torch.autograd.grad(o, inputs, do, retain_graph=True)
            row[name] = {"bench_ms": round(median_ms(grad), 4), "host_us": host_us(grad), **kernels(grad)}
        add_row(rows, row, "bwd_profile.json")


if __name__ == "__main__":
    main()
