"""Host time of one backward, split into the autograd engine's share and ours (session 5, issue #6).

Per pattern: host microseconds per call (``perf_counter`` over ``HOST_REPS`` calls, one sync at
the end) of ``torch.autograd.grad`` through ``patternc.attention``, of a direct
``runtime.backward`` call, of FlexAttention's backward and of a trivial ``autograd.Function``;
the time spent inside our ``runtime.backward`` during the autograd calls (and on which thread);
and the GPU-visible medians (``do_bench``) of the same calls.

    HOST_N=16384 HOST_PATTERNS='sparse_transformer/sparse_transformer_block' python benchmarks/dev/host_bwd.py
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from devcommon import gpu_rows, median_ms, with_flex

import patternc

N = int(os.environ.get("HOST_N", "16384"))
D = int(os.environ.get("HOST_D", "64"))
REPS = int(os.environ.get("HOST_REPS", "200"))
PATTERNS = os.environ.get("HOST_PATTERNS", "sparse_transformer/sparse_transformer_block").split(";")
bw = importlib.import_module("patternc.runtime.backward")
fw = importlib.import_module("patternc.runtime.forward")
ag = importlib.import_module("patternc.runtime.autograd")


class Trivial(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return q.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return g, g, g


def host_us(fn: Callable[[], Any]) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(REPS):
        fn()
    t = time.perf_counter() - t0
    torch.cuda.synchronize()
    return t / REPS * 1e6


def timed_inside() -> tuple[list[float], set[int], Callable[[], None]]:
    """Wrap ``runtime.backward`` as the autograd Function calls it: time inside, threads seen."""
    inside: list[float] = []
    threads: set[int] = set()
    orig = bw.backward

    def wrapped(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        out = orig(*a, **kw)
        inside.append(time.perf_counter() - t0)
        threads.add(threading.get_ident())
        return out

    bw.backward = wrapped  # type: ignore[attr-defined]

    def restore() -> None:
        bw.backward = orig  # type: ignore[attr-defined]

    return inside, threads, restore


def row_of(text: str, flex: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           do: torch.Tensor) -> dict[str, Any]:
    node, bm, (qg, kg, vg) = with_flex(text, N, q, k, v)
    o = patternc.attention(qg, kg, vg, node)
    o_op = torch.ops.patternc.attention_fwd(qg, kg, vg, ag.pattern_key(node), D ** -0.5)[0]
    fo = flex(qg, kg, vg, block_mask=bm)
    to = Trivial.apply(qg, kg, vg)
    out, lse = fw.forward(q, k, v, node)

    def grad(x: torch.Tensor) -> Callable[[], Any]:
        return lambda: torch.autograd.grad(x, (qg, kg, vg), do, retain_graph=True)

    calls = {"autograd": grad(o), "op": grad(o_op),
             "direct": lambda: bw.backward(q, k, v, out, lse, do, node),
             "flex": grad(fo), "trivial": grad(to)}
    row: dict[str, Any] = {"pattern": text, "n": N, "d": D, "main_thread": threading.get_ident()}
    for name, fn in calls.items():
        row[f"{name}_host_us"] = host_us(fn)
        row[f"{name}_gpu_ms"] = median_ms(fn)
    inside, threads, restore = timed_inside()
    row["autograd_host_us_again"] = host_us(calls["autograd"])
    restore()
    row["inside_backward_us"] = sum(inside[5:]) / max(1, len(inside) - 5) * 1e6
    row["backward_threads"] = sorted(threads)
    return row


def main() -> None:
    gpu_rows(PATTERNS, N, D, row_of, f"host_bwd_n{N}_d{D}.json",
             lambda r: json.dumps({k: round(x, 3) if isinstance(x, float) else x for k, x in r.items()}))


if __name__ == "__main__":
    main()
