"""Host time per call (session 3, issue #6): how long the CPU takes to submit one forward /
backward while the GPU is kept busy (so the host never waits), with and without direct launches
(``patternc.runtime.launch``), beside FlexAttention and a trivial ``autograd.Function`` (the
autograd engine's own cost), plus ``do_bench`` medians. bf16, B=1, H=16, D=64.

    HOST_N=4096 HOST_PATTERNS='block_local/block_local;longformer/longformer;causal' \\
        python benchmarks/dev/host_overhead.py

``HOST_PROFILE=1``: instead, profile (cProfile) 50 backward calls per pattern with the GPU kept
busy, and write the top functions to ``$OUT/profile_<pattern>.txt``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import triton

import patternc
from patternc.runtime import launch
from patternc.runtime.backward import backward
from patternc.runtime.forward import forward

N = int(os.environ.get("HOST_N", "4096"))
PATTERNS = os.environ.get("HOST_PATTERNS", "block_local/block_local;longformer/longformer;causal").split(";")
B, H, D, DT = 1, 16, 64, torch.bfloat16


def host_us(fn: Callable[[], Any], n: int = 30) -> float:
    """Median CPU time of one call with ~50 ms of GPU work queued ahead of it."""
    fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(int(1.7e9 * 0.05))
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    torch.cuda.synchronize()
    return statistics.median(ts) * 1e6


def bench(fn: Callable[[], Any]) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median"))


class Trivial(torch.autograd.Function):
    """The autograd engine's cost: saves five tensors, returns precomputed gradients."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor,  # type: ignore[override]
                v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(q, k, v, q, q)
        ctx.set_materialize_grads(False)
        return q.detach().clone(), q.new_empty(q.shape[:3], dtype=torch.float32)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, do: torch.Tensor, dlse: torch.Tensor | None) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def node_of(text: str) -> Any:
    if "/" in text:
        path, name = text.split("/")
        return patternc.load(f"patternc/stdlib_patterns/{path}.sap")[name]()
    return patternc.pattern(text)


def grad_of(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], do: torch.Tensor) -> Callable[[], Any]:
    return lambda: torch.autograd.grad(out, inputs, do, retain_graph=True)


def measure(node: Any, flex: Any, t: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One pattern's row: host times and medians, ours (Triton launches, direct launches) and flex."""
    from patternc.flex import to_flex

    q, k, v, do = t["q"], t["k"], t["v"], t["do"]
    grads = (t["qg"], t["kg"], t["vg"])
    row: dict[str, Any] = {}
    o = patternc.attention(*grads, node)
    out, lse = forward(q, k, v, node)
    for fast in (False, True):
        launch._ENABLED = fast
        tag = "fast" if fast else "triton"
        row[f"fwd_host_us_{tag}"] = host_us(lambda: patternc.attention(q, k, v, node))
        row[f"fwd_direct_host_us_{tag}"] = host_us(lambda: forward(q, k, v, node))
        row[f"bwd_host_us_{tag}"] = host_us(grad_of(o, grads, do))
        row[f"bwd_direct_host_us_{tag}"] = host_us(lambda: backward(q, k, v, out, lse, do, node))
        row[f"fwd_ms_{tag}"] = bench(lambda: patternc.attention(q, k, v, node))
        row[f"bwd_ms_{tag}"] = bench(grad_of(o, grads, do))
    bm = to_flex(node, N, heads=H if patternc.ir.head_counts(node) > 1 else None, device="cuda")
    ref = flex(q, k, v, block_mask=bm)
    row["fwd_err"] = float((patternc.attention(q, k, v, node).float() - ref.float()).abs().max())
    fo = flex(*grads, block_mask=bm)
    gref = grad_of(fo, grads, do)()
    row["bwd_rel_err"] = max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                             for a, b in zip(grad_of(o, grads, do)(), gref))
    row["flex_fwd_host_us"] = host_us(lambda: flex(q, k, v, block_mask=bm))
    row["flex_bwd_host_us"] = host_us(grad_of(fo, grads, do))
    row["flex_fwd_ms"] = bench(lambda: flex(q, k, v, block_mask=bm))
    row["flex_bwd_ms"] = bench(grad_of(fo, grads, do))
    return row


def profile(node: Any, name: str, t: dict[str, torch.Tensor]) -> None:
    """cProfile of 50 backward calls through autograd (the GPU kept busy: host time only)."""
    import cProfile
    import io
    import pstats

    grads = (t["qg"], t["kg"], t["vg"])
    fn = grad_of(patternc.attention(*grads, node), grads, t["do"])
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(int(1.7e9 * 0.2))
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(50):
        fn()
    prof.disable()
    torch.cuda.synchronize()
    text = io.StringIO()
    for key in ("tottime", "cumulative"):
        pstats.Stats(prof, stream=text).sort_stats(key).print_stats(40)
    path = os.path.join(os.environ.get("OUT", "."), f"profile_{name.replace('/', '_')}.txt")
    with open(path, "w") as f:
        f.write(text.getvalue())


def main() -> None:
    import torch._dynamo.config
    from torch.nn.attention.flex_attention import flex_attention

    torch._dynamo.config.recompile_limit = 4096
    torch._dynamo.config.cache_size_limit = 4096
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    t = {name: torch.randn(B, H, N, D, device="cuda", dtype=DT) for name in ("q", "k", "v", "do")}
    t.update({name + "g": t[name].detach().requires_grad_() for name in ("q", "k", "v")})
    grads = (t["qg"], t["kg"], t["vg"])
    if os.environ.get("HOST_PROFILE") == "1":
        for text in PATTERNS:
            profile(node_of(text), text, t)
        return
    rows: list[dict[str, Any]] = [{"what": "trivial autograd.Function",
                                   "bwd_host_us": host_us(grad_of(Trivial.apply(*grads)[0], grads, t["do"]))}]
    print(rows[0], flush=True)
    for text in PATTERNS:
        rows.append({"what": text, **measure(node_of(text), flex, t)})
        print(json.dumps({key: round(x, 3) if isinstance(x, float) else x for key, x in rows[-1].items()}),
              flush=True)
    meta = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    with open(os.path.join(os.environ.get("OUT", "."), f"host_overhead_n{N}.json"), "w") as f:
        json.dump({**meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
