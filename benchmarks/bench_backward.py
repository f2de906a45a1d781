"""Backward benchmark on one GPU: patternc's generated backward kernels vs FlexAttention's backward
on the same pattern and dense SDPA's (flash and cuDNN), in one process, bf16, B=1, H=16, D=64.

    python benchmarks/bench_backward.py             # N = 16384, 65536
    NS=16384 ONLY=band python benchmarks/bench_backward.py
    SWEEP=1 python benchmarks/bench_backward.py     # also time tile configurations at the first N
    SWEEP=only ...                                  # only that

Each backward is timed as ``torch.autograd.grad(out, (q, k, v), dO)`` on a saved forward
(``triton.testing.do_bench`` median); for patternc also the bare kernels
(``patternc.runtime.backward.backward``). Useful TFLOP/s = ``2.5 * 4 * nnz * D * H * B / time``,
``nnz`` the pattern's exact pair count. Prints a markdown table and writes
``$OUT/bench_backward.json``.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_forward import PATTERNS, cell, fmt, mask_mods, nnz_of, strategy_of

import patternc
from patternc import ir
from patternc.codegen.backward import BackwardConfig, default_config
from patternc.runtime.backward import backward
from patternc.runtime.forward import forward

B, H, D = 1, 16, int(os.environ.get("HEAD_DIM", "64"))
DT = torch.bfloat16


def bench(fn: Callable[[], Any]) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def grad_time(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], do: torch.Tensor) -> float:
    return bench(lambda: torch.autograd.grad(out, inputs, do, retain_graph=True))


def dense_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor) -> dict[str, float]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    res: dict[str, float] = {}
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        for causal in (False, True):
            try:
                with sdpa_kernel(be):
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    res[f"{name}{'_causal' if causal else ''}"] = grad_time(out, (q, k, v), do)
            except Exception as e:  # a backend may be missing on this build
                print(f"sdpa {name}: {e!r}"[:200])
    return res


def flex_block_mask(name: str, node: ir.Node, n: int, hand: bool = False) -> tuple[Any, str]:
    """The BlockMask from ``patternc.flex.to_flex``, or from the hand-written mask_mods."""
    if not hand:
        try:
            from patternc.flex import to_flex

            return to_flex(node, n, n, device="cuda"), "to_flex"
        except ImportError:
            pass
    from torch.nn.attention.flex_attention import create_block_mask

    bm = create_block_mask(mask_mods(n, "cuda")[name], None, None, n, n, device="cuda", _compile=True)
    return bm, "create_block_mask"


def flex_grads(name: str, node: ir.Node, n: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               do: torch.Tensor, flex: Any, r: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """FlexAttention's gradients and backward time (into ``r``); falls back to the hand-written
    mask_mod when the one from ``to_flex`` fails (recorded in ``r['flex_mask_error']``)."""
    for hand in (False, True):
        try:
            bm, r["flex_mask"] = flex_block_mask(name, node, n, hand)
            fo = flex(q, k, v, block_mask=bm)
            ref = torch.autograd.grad(fo, (q, k, v), do, retain_graph=True)
            r["flex_bwd_ms"] = grad_time(fo, (q, k, v), do)
            return ref
        except Exception as e:
            r["flex_mask_error" if not hand else "flex_error"] = repr(e)[:300]
            torch.cuda.empty_cache()
    return ()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))


def measure(name: str, n: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor,
            flex: Any, dense: dict[str, float]) -> dict[str, Any]:
    """One row: our backward and FlexAttention's on pattern ``name`` at ``n`` tokens."""
    node = PATTERNS[name]
    r: dict[str, Any] = dict(N=n, pattern=name, **{f"sdpa_{k2}_bwd_ms": t for k2, t in dense.items()})
    ours = None
    try:
        r["nnz"] = nnz = nnz_of(node, n)
        r["density"] = nnz / n / n
        t0 = time.perf_counter()
        out = patternc.attention(q, k, v, node)
        ours = torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
        torch.cuda.synchronize()
        r["ours_first_call_s"] = time.perf_counter() - t0
        r["ours_bwd_ms"] = grad_time(out, (q, k, v), do)
        o2, lse = forward(q.detach(), k.detach(), v.detach(), node)
        r["ours_kernels_ms"] = bench(lambda: backward(q.detach(), k.detach(), v.detach(), o2, lse, do, node))
        r["ours_tflops"] = 2.5 * 4 * nnz * D * H * B / r["ours_bwd_ms"] / 1e9
        r["strategy"] = strategy_of(node, n, default_config(D, False))
        if r["strategy"] != "blocks":  # the same kernels with every branch as plain blocks
            qd, kd, vd = q.detach(), k.detach(), v.detach()
            r["ours_plain_kernels_ms"] = bench(
                lambda: backward(qd, kd, vd, o2, lse, do, node, residue_mode="off"))
    except Exception as e:
        r["ours_error"] = repr(e)[:300]
    ref = flex_grads(name, node, n, q, k, v, do, flex, r)
    if "flex_bwd_ms" in r and "nnz" in r:
        r["flex_tflops"] = 2.5 * 4 * r["nnz"] * D * H * B / r["flex_bwd_ms"] / 1e9
    if ours is not None and ref:
        r["rel_diff_vs_flex"] = {g: rel_diff(a, b) for g, a, b in zip(("dq", "dk", "dv"), ours, ref)}
    if "ours_bwd_ms" in r and "flex_bwd_ms" in r:
        r["speedup_vs_flex"] = r["flex_bwd_ms"] / r["ours_bwd_ms"]
    if "ours_bwd_ms" in r and "cudnn" in dense:
        r["speedup_vs_cudnn_dense"] = dense["cudnn"] / r["ours_bwd_ms"]
    return r


SWEEP = [
    BackwardConfig(64, 64, 64, 64, 64, 64, 4, 3),
    BackwardConfig(128, 128, 64, 128, 128, 64, 8, 3),
    BackwardConfig(128, 128, 32, 128, 128, 32, 4, 2),
    BackwardConfig(64, 64, 32, 64, 64, 32, 4, 2),
    BackwardConfig(64, 64, 64, 64, 64, 64, 4, 2),
    BackwardConfig(128, 128, 64, 128, 128, 64, 8, 2),
    BackwardConfig(64, 64, 32, 64, 64, 32, 4, 3),
]


def sweep(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor,
          names: list[str]) -> list[dict]:
    """Bare-kernel medians of a few tile configurations (to choose the defaults)."""
    rows = []
    qd, kd, vd = q.detach(), k.detach(), v.detach()
    for name in names:
        node = PATTERNS[name]
        out, lse = forward(qd, kd, vd, node)
        for cfg in SWEEP:
            try:
                ms = bench(lambda c=cfg, o=out, s=lse, p=node: backward(qd, kd, vd, o, s, do, p, config=c))
                rows.append(dict(pattern=name, N=q.shape[2], config=repr(cfg), ms=ms))
            except Exception as e:
                rows.append(dict(pattern=name, N=q.shape[2], config=repr(cfg), error=repr(e)[:200]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    from torch.nn.attention.flex_attention import flex_attention

    out_dir = os.environ.get("OUT", ".")
    ns = [int(x) for x in os.environ.get("NS", "16384,65536").split(",")]
    names = [p for p in PATTERNS if not os.environ.get("ONLY") or os.environ["ONLY"] in p]
    import torch._dynamo.config

    # one recompilation per BlockMask: past the default limit (8) dynamo would fall back to eager
    # flex_attention, which materializes n x n scores (256 GiB at 64k tokens)
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.cache_size_limit = 64
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    sweeps: list[dict] = []
    meta = dict(date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                B=B, H=H, D=D, dtype=str(DT), config=repr(default_config(D, False)))
    for n in ns:
        q, k, v = (torch.randn(B, H, n, D, device="cuda", dtype=DT, requires_grad=True) for _ in range(3))
        do = torch.randn(B, H, n, D, device="cuda", dtype=DT)
        if os.environ.get("SWEEP") and n == ns[0]:
            sweeps = sweep(q, k, v, do, names)
            if os.environ["SWEEP"] == "only":
                with open(os.path.join(out_dir, "bench_backward_sweep.json"), "w") as f:
                    json.dump(dict(meta=meta, sweep=sweeps), f, indent=1)
                return
        dense = dense_backward(q, k, v, do)
        for name in names:
            rows.append(measure(name, n, q, k, v, do, flex, dense))
            print(json.dumps(rows[-1]), flush=True)
            with open(os.path.join(out_dir, "bench_backward.json"), "w") as f:
                json.dump(dict(meta=meta, rows=rows, sweep=sweeps), f, indent=1)
        del q, k, v, do
        torch.cuda.empty_cache()
    print(table(meta, rows))


def table(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The markdown table for benchmarks/RESULTS.md."""
    head = (f"{meta['date']}, {meta['gpu']}, torch {meta['torch']}, triton {meta['triton']}; "
            f"B={meta['B']}, H={meta['H']}, D={meta['D']}, {meta['dtype']}; backward median ms (do_bench)\n\n"
            "| pattern | N | density | ours bwd ms | ours TFLOP/s | flex bwd ms | flex TFLOP/s "
            "| ours vs flex | cuDNN dense bwd ms | flash dense bwd ms | ours vs cuDNN dense |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [
        f"| `{cell(r['pattern'])}` | {r['N']} | {fmt(r.get('density'), '.4f')} "
        f"| {fmt(r.get('ours_bwd_ms'), '.3f')} | {fmt(r.get('ours_tflops'), '.0f')} "
        f"| {fmt(r.get('flex_bwd_ms'), '.3f')} | {fmt(r.get('flex_tflops'), '.0f')} "
        f"| {fmt(r.get('speedup_vs_flex'), '.2f')}x | {fmt(r.get('sdpa_cudnn_bwd_ms'), '.2f')} "
        f"| {fmt(r.get('sdpa_flash_bwd_ms'), '.2f')} | {fmt(r.get('speedup_vs_cudnn_dense'), '.2f')}x |"
        for r in rows]
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
