"""Tile-config sweep on one GPU (session 3, issue #6): our forward and backward kernels under each
autotuning candidate (``patternc.runtime.autotune``) and residue mode, beside compiled
FlexAttention on the same ``to_flex`` BlockMask, bf16, B=1, H=16. Every variant is checked against
FlexAttention's output (max abs error of the forward, max relative error of the gradients).

    SWEEP_N=65536 SWEEP_D=64 SWEEP_PATTERNS='window(256, 0);causal' python benchmarks/dev/sweep.py

Rows go to stdout and ``$OUT/sweep_n{N}_d{D}.json``; ``SWEEP_DEADLINE`` (s) stops early.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch
import triton
from devcommon import configure_dynamo, node_of

from patternc import ir
from patternc.codegen.backward import BackwardConfig
from patternc.runtime import autotune
from patternc.runtime.backward import backward
from patternc.runtime.forward import ForwardConfig, forward

T0 = time.perf_counter()
N = int(os.environ.get("SWEEP_N", "65536"))
D = int(os.environ.get("SWEEP_D", "64"))
DEADLINE = float(os.environ.get("SWEEP_DEADLINE", "240"))
PATTERNS = os.environ.get("SWEEP_PATTERNS", "window(256, 0);causal").split(";")
BWD = os.environ.get("SWEEP_BWD", "1") == "1"
MODES = os.environ.get("SWEEP_MODES", "auto,off").split(",")
# extra candidates beyond autotune's lists, ';'-separated tuples: SWEEP_EXTRA_FWD='128,64,8,3;64,64,4,2'


def configs(var: str) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in c.split(",")) for c in os.environ.get(var, "").split(";") if c]


EXTRA_FWD, EXTRA_BWD = configs("SWEEP_EXTRA_FWD"), configs("SWEEP_EXTRA_BWD")
LISTED = os.environ.get("SWEEP_LISTED", "1") == "1"  # 0: only the extra candidates and the default
B, H, DT = 1, 16, torch.bfloat16


def bench(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Median ms of ``fn(*args, **kwargs)``."""
    return float(triton.testing.do_bench(lambda: fn(*args, **kwargs), warmup=10, rep=50,
                                         return_mode="median"))


def main() -> None:
    configure_dynamo()
    from torch.nn.attention.flex_attention import flex_attention

    from patternc.flex import to_flex

    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(B, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))
    rows = []
    for text in PATTERNS:
        if time.perf_counter() - T0 > DEADLINE:
            print("deadline", flush=True)
            break
        node = node_of(text)
        heads = H if ir.head_counts(node) > 1 else None
        bm = to_flex(node, N, heads=heads, device="cuda")
        ref = flex(q, k, v, block_mask=bm)
        row: dict[str, Any] = {"pattern": text, "n": N, "d": D,
                               "flex_fwd": bench(flex, q, k, v, block_mask=bm)}
        fo = flex(qg, kg, vg, block_mask=bm)
        gref = torch.autograd.grad(fo, (qg, kg, vg), do, retain_graph=True)
        if BWD:
            row["flex_bwd"] = bench(torch.autograd.grad, fo, (qg, kg, vg), do, retain_graph=True)
        fwd: dict[str, Any] = {}
        for mode in MODES:
            for c in [*(autotune.FORWARD_CANDIDATES[64 if D <= 64 else 128] if LISTED else ()), *EXTRA_FWD]:
                cfg = ForwardConfig(*c)
                try:
                    out, _ = forward(q, k, v, node, config=cfg, residue_mode=mode)
                    err = float((out.float() - ref.float()).abs().max())
                    fwd[f"{mode} {c}"] = (bench(forward, q, k, v, node, config=cfg, residue_mode=mode), err)
                except Exception as e:  # a sweep records failures
                    fwd[f"{mode} {c}"] = (None, repr(e)[:120])
            out, _ = forward(q, k, v, node, residue_mode=mode)
            fwd[f"{mode} default"] = (bench(forward, q, k, v, node, residue_mode=mode),
                                      float((out.float() - ref.float()).abs().max()))
        row["fwd"] = fwd
        if BWD:
            out, lse = forward(q, k, v, node)
            bwd: dict[str, Any] = {}
            listed = autotune.BACKWARD_CANDIDATES[64 if D <= 64 else 128] if LISTED else ()
            cands: list[tuple[int, ...] | None] = [None, *listed, *EXTRA_BWD]
            for mode in MODES:
                for cb in cands:
                    cfg_b = None if cb is None else BackwardConfig(*cb)
                    try:
                        g = backward(q, k, v, out, lse, do, node, config=cfg_b, residue_mode=mode)
                        err = max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                                  for a, b in zip(g, gref))
                        t = bench(backward, q, k, v, out, lse, do, node, config=cfg_b, residue_mode=mode)
                        bwd[f"{mode} {cb or 'default'}"] = (t, err)
                    except Exception as e:
                        bwd[f"{mode} {cb or 'default'}"] = (None, repr(e)[:120])
            row["bwd"] = bwd
        rows.append(row)
        best_f = min((t for t, _ in fwd.values() if t is not None), default=None)
        line = f"{text:50s} flex fwd {row['flex_fwd']:.3f}  ours best {best_f}"
        if BWD:
            best_b = min((t for t, _ in row["bwd"].values() if t is not None), default=None)
            line += f" | flex bwd {row['flex_bwd']:.3f} ours best {best_b}"
        print(line, flush=True)
        for key, val in fwd.items():
            print(f"    fwd {key:40s} {val}", flush=True)
        for key, val in row.get("bwd", {}).items():
            print(f"    bwd {key:40s} {val}", flush=True)
        out_dir = os.environ.get("OUT", ".")
        with open(os.path.join(out_dir, f"sweep_n{N}_d{D}.json"), "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "triton": triton.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
