"""Forward benchmark on one GPU: patternc's generated kernel vs FlexAttention on the same pattern
and dense SDPA (flash and cuDNN backends), in one process, bf16, B=1, H=16, D=64.

    python benchmarks/bench_forward.py            # N = 4096, 16384, 65536
    NS=4096 python benchmarks/bench_forward.py    # a subset
    HEAD_DIM=128 python benchmarks/bench_forward.py   # another head dim (also bench_backward.py)

Prints a markdown table and writes ``$OUT/bench_forward.json`` (``$OUT`` defaults to ``.``).
Useful TFLOP/s = ``4 * nnz * D * H * B / time`` with ``nnz`` the pattern's exact pair count
(``patternc.analysis.report``). FlexAttention's BlockMask comes from ``create_block_mask`` with an
equivalent hand-written ``mask_mod`` (``FLEX_MASK=to_flex``: from ``patternc.flex.to_flex``).
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import triton
from anchors import PATTERNS

from patternc import ir
from patternc.rng import random_key_blocks
from patternc.runtime.forward import default_config, forward

B, H, D = 1, 16, int(os.environ.get("HEAD_DIM", "64"))
DT = torch.bfloat16


def bench(fn: Callable[[], Any]) -> float:
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def mask_mods(n: int, dev: str) -> dict[str, Callable[..., Any]]:
    """Hand-written FlexAttention mask_mods equal to PATTERNS (self-attention, so p == q)."""
    chosen = np.zeros((-(-n // 64), -(-n // 64)), dtype=bool)
    qb = np.arange(chosen.shape[0])
    np.put_along_axis(chosen, random_key_blocks(3, 64, 0, qb, n), True, axis=1)
    rnd = torch.from_numpy(chosen).to(dev)

    def band(b, h, q, k):  # type: ignore[no-untyped-def]
        return (q - k).abs() <= 256

    def glob(b, h, q, k):  # type: ignore[no-untyped-def]
        return (q < 16) | (k < 16)

    return {
        "band(256)": band,
        "causal": lambda b, h, q, k: q >= k,
        "band(256) | global([0..16])": lambda b, h, q, k: band(b, h, q, k) | glob(b, h, q, k),
        "band(256) | global([0..16]) | random_blocks(3, 64)":
            lambda b, h, q, k: band(b, h, q, k) | glob(b, h, q, k) | rnd[q // 64, k // 64],
        "dilated(256, 2) | global([0..16])":
            lambda b, h, q, k: (((q - k).abs() <= 512) & ((q - k) % 2 == 0)) | glob(b, h, q, k),
        "(window(127, 0) | strided(128)) & causal":
            lambda b, h, q, k: (q >= k) & (((q - k) <= 127) | ((q - k) % 128 == 0)),
    }


def flex_block_mask(name: str, node: ir.Node, n: int, dev: str) -> tuple[Any, str]:
    """FlexAttention's BlockMask: ``create_block_mask`` on a hand-written mask_mod (as a user would,
    and as the DESIGN.md anchors did), or ``patternc.flex.to_flex`` with ``FLEX_MASK=to_flex``."""
    if os.environ.get("FLEX_MASK") == "to_flex":
        from patternc.flex import to_flex

        return to_flex(node, n, n, device=dev), "to_flex"
    from torch.nn.attention.flex_attention import create_block_mask

    bm = create_block_mask(mask_mods(n, dev)[name], None, None, n, n, device=dev, _compile=True)
    return bm, "create_block_mask"


def nnz_of(node: ir.Node, n: int) -> int:
    from patternc.analysis import report

    return int(report(node, n).nnz)


def strategy_of(node: ir.Node, n: int, cfg: Any) -> str:
    """``residue r=...`` when the default mode runs some branch residue-gathered, else ``blocks``."""
    from patternc.runtime import residue

    dec = residue.decompose(ir.concretize(node, n), n, n, H, cfg.block_q, cfg.block_k, residue.default_mode())
    return "blocks" if dec is None else "residue r=" + ",".join(str(p.r) for p in dec.parts)


def dense_times(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> dict[str, float]:
    """SDPA medians: flash and cuDNN backends, full and causal."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dense: dict[str, float] = {}
    for be_name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        for causal in (False, True):
            try:
                with sdpa_kernel(be):
                    dense[f"{be_name}{'_causal' if causal else ''}"] = bench(
                        lambda c=causal: F.scaled_dot_product_attention(q, k, v, is_causal=c))
            except Exception as e:  # a backend may be missing on this build
                print(f"sdpa {be_name}: {e!r}"[:200])
    return dense


def measure(name: str, n: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, flex: Any,
            dense: dict[str, float]) -> dict[str, Any]:
    """One row: our kernel and FlexAttention on pattern ``name`` at ``n`` tokens."""
    from patternc.lower import lower

    node = PATTERNS[name]
    r: dict[str, Any] = dict(N=n, pattern=name, **{f"sdpa_{k2}_ms": t for k2, t in dense.items()})
    ours = None
    try:
        r["nnz"] = nnz = nnz_of(node, n)
        r["density"] = nnz / n / n
        cfg = default_config(n, n, D, DT, False)
        t0 = time.perf_counter()
        plan = lower(node, n, n, block_q=cfg.block_q, block_k=cfg.block_k, heads=H)
        r["plan_ms"] = (time.perf_counter() - t0) * 1e3
        r["blocks"] = f"{cfg.block_q}x{cfg.block_k}"
        r["block_density"] = float((plan.forward.num.sum() + plan.forward.full_num.sum())
                                   / (plan.num_q_blocks * plan.num_k_blocks))
        r["full_blocks"] = int(plan.forward.full_num.sum())
        r["partial_blocks"] = int(plan.forward.num.sum())
        t0 = time.perf_counter()
        ours, _ = forward(q, k, v, node)
        torch.cuda.synchronize()
        r["ours_first_call_s"] = time.perf_counter() - t0
        r["ours_ms"] = bench(lambda: forward(q, k, v, node))
        r["ours_tflops"] = 4 * nnz * D * H * B / r["ours_ms"] / 1e9
        r["strategy"] = strategy_of(node, n, cfg)
        if r["strategy"] != "blocks":  # the same call with every branch as plain blocks
            r["ours_plain_ms"] = bench(lambda: forward(q, k, v, node, residue_mode="off"))
    except Exception as e:
        r["ours_error"] = repr(e)[:300]
    try:
        t0 = time.perf_counter()
        bm, how = flex_block_mask(name, node, n, q.device.type)
        r["flex_mask"] = how
        r["flex_mask_s"] = time.perf_counter() - t0
        ref = flex(q, k, v, block_mask=bm)
        r["flex_ms"] = bench(lambda: flex(q, k, v, block_mask=bm))
        if "nnz" in r:
            r["flex_tflops"] = 4 * r["nnz"] * D * H * B / r["flex_ms"] / 1e9
        if ours is not None:
            r["max_abs_diff_vs_flex"] = float((ours.float() - ref.float()).abs().max())
    except Exception as e:
        r["flex_error"] = repr(e)[:300]
    if "ours_ms" in r and "flex_ms" in r:
        r["speedup_vs_flex"] = r["flex_ms"] / r["ours_ms"]
    if "ours_ms" in r and "cudnn" in dense:
        r["speedup_vs_cudnn_dense"] = dense["cudnn"] / r["ours_ms"]
    return r


# block configs (BLOCK_M, BLOCK_N, warps, stages) and patterns of the two sweeps, by $SWEEP
_SWEEPS = {
    "1": (16384, [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 4, 2), (64, 64, 4, 3),
                  (128, 32, 4, 3), (64, 128, 4, 3)],
          ("band(256)", "causal", "band(256) | global([0..16])", "dilated(256, 2) | global([0..16])")),
    "causal": (65536, [(64, 64, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3), (128, 64, 4, 4), (128, 128, 8, 3),
                       (128, 128, 8, 2), (128, 32, 4, 4), (64, 128, 4, 3)],
               ("causal", "band(256)")),
}


def sweep(kind: str) -> None:
    """SWEEP=1 (16k; picks default_config's choices) or SWEEP=causal (64k): median ms per config."""
    from patternc.runtime.forward import ForwardConfig

    n, shapes, names = _SWEEPS.get(kind, _SWEEPS["1"])
    q, k, v = (torch.randn(B, H, n, D, device="cuda", dtype=DT) for _ in range(3))
    configs = [ForwardConfig(bq, bk, w, st) for bq, bk, w, st in shapes]
    for name in names:
        times = []
        for cfg in configs:
            try:
                times.append(f"{cfg.block_q}x{cfg.block_k}/w{cfg.num_warps}/s{cfg.num_stages}: "
                             f"{bench(lambda c=cfg, p=PATTERNS[name]: forward(q, k, v, p, config=c)):.3f}")
            except Exception as e:
                times.append(f"{cfg}: {e!r}"[:120])
        print(f"sweep N={n} {name}: " + "; ".join(times), flush=True)


def main() -> None:
    if os.environ.get("SWEEP"):
        sweep(os.environ["SWEEP"])
        return
    import torch._dynamo.config
    import torch._functorch.config
    from torch.nn.attention.flex_attention import flex_attention

    # as in shared/bench/anchors_gpu.py: every (mask, N) recompiles flex; past dynamo's default limit
    # of 8 it would silently fall back to the unfused path that materializes the score matrix
    torch._functorch.config.donated_buffer = False
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.cache_size_limit = 64

    out_dir = os.environ.get("OUT", ".")
    ns = [int(x) for x in os.environ.get("NS", "4096,16384,65536").split(",")]
    names = [p for p in PATTERNS if not os.environ.get("ONLY") or os.environ["ONLY"] in p]
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    meta = dict(date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                B=B, H=H, D=D, dtype=str(DT))
    for n in ns:
        q, k, v = (torch.randn(B, H, n, D, device="cuda", dtype=DT) for _ in range(3))
        dense = dense_times(q, k, v)
        for name in names:
            rows.append(measure(name, n, q, k, v, flex, dense))
            print(json.dumps(rows[-1]), flush=True)
            with open(os.path.join(out_dir, "bench_forward.json"), "w") as f:  # after every row
                json.dump(dict(meta=meta, rows=rows), f, indent=1)
        del q, k, v
        torch.cuda.empty_cache()
    print(table(meta, rows))


def cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (pattern unions contain ``|``)."""
    return text.replace("|", "\\|")


def fmt(x: Any, spec: str) -> str:
    """``x`` formatted for a table cell, or ``err`` where the measurement failed."""
    return format(x, spec) if isinstance(x, (int, float)) else "err"


def table(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The markdown table for benchmarks/RESULTS.md."""
    head = (f"{meta['date']}, {meta['gpu']}, torch {meta['torch']}, triton {meta['triton']}; "
            f"B={meta['B']}, H={meta['H']}, D={meta['D']}, {meta['dtype']}; median ms (triton do_bench)\n\n"
            "| pattern | N | density | block density | ours ms | ours TFLOP/s | flex ms | flex TFLOP/s "
            "| ours vs flex | cuDNN dense ms | flash dense ms |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [
        f"| `{cell(r['pattern'])}` | {r['N']} | {fmt(r.get('density'), '.4f')} "
        f"| {fmt(r.get('block_density'), '.4f')} | {fmt(r.get('ours_ms'), '.3f')} "
        f"| {fmt(r.get('ours_tflops'), '.0f')} | {fmt(r.get('flex_ms'), '.3f')} "
        f"| {fmt(r.get('flex_tflops'), '.0f')} | {fmt(r.get('speedup_vs_flex'), '.2f')}x "
        f"| {fmt(r.get('sdpa_cudnn_ms'), '.2f')} | {fmt(r.get('sdpa_flash_ms'), '.2f')} |"
        for r in rows]
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
