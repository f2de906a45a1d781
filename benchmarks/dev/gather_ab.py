"""Residue gathering on or off at short lengths (session 10, issue #6): per pattern and length,
the forward and the backward as direct calls with ``residue_mode`` ``auto`` / ``force`` / ``off``,
each as the sum of its CUDA kernels' times (``torch.profiler``: the GPU's work, which host time
hides at 4k tokens) and as a ``do_bench`` median, and the largest output difference against
``off``. bf16, B=1, H=16.

    GATHER_NS=2048,4096,8192 GATHER_D=64 \\
        GATHER_PATTERNS='sparse_transformer/sparse_transformer_stride;causal' \\
        python benchmarks/dev/gather_ab.py

Rows go to stdout and ``$OUT/gather_ab_d{D}.json``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import triton
from devcommon import DT, B, H, median_ms, node_of
from probe_bwd import kernels

from patternc import ir
from patternc.runtime import residue
from patternc.runtime.backward import backward
from patternc.runtime.forward import forward

NS = [int(x) for x in os.environ.get("GATHER_NS", "2048,4096,8192,16384").split(",")]
D = int(os.environ.get("GATHER_D", "64"))
PATTERNS = os.environ.get("GATHER_PATTERNS", "dilated_sliding_window/dilated_sliding_window;"
                          "dilated_sliding_window/dilated_sliding_window_causal;"
                          "sparse_transformer/sparse_transformer_stride").split(";")


def kernel_us(fn: Any) -> float:
    """GPU time of one call: its kernels' mean times, summed."""
    return sum(count * us for name, (count, us) in ((k, v) for k, v in kernels(fn).items() if k != "order"))


def one_mode(mode: str, node: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             do: torch.Tensor) -> tuple[dict[str, float], tuple[torch.Tensor, ...]]:
    """Kernel times and medians of one residue mode, and its output and gradients."""
    o, lse = forward(q, k, v, node, residue_mode=mode)
    grads = backward(q, k, v, o, lse, do, node, residue_mode=mode)

    def fwd() -> Any:
        return forward(q, k, v, node, residue_mode=mode)

    def bwd() -> Any:
        return backward(q, k, v, o, lse, do, node, residue_mode=mode)

    times = {f"{mode}_fwd_us": kernel_us(fwd), f"{mode}_bwd_us": kernel_us(bwd),
             f"{mode}_fwd_ms": median_ms(fwd), f"{mode}_bwd_ms": median_ms(bwd)}
    return times, (o, *grads)


def row(text: str, n: int) -> dict[str, Any]:
    node = node_of(text)
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(B, H, n, D, device="cuda", dtype=DT) for _ in range(4))
    out: dict[str, Any] = {"pattern": text, "n": n, "d": D,
                           "auto_gathers": residue.decompose(ir.concretize(node, n), n, n, H, 64, 64, "auto")
                           is not None}
    ref: tuple[torch.Tensor, ...] = ()
    for mode in ("off", "force", "auto"):
        times, got = one_mode(mode, node, q, k, v, do)
        ref = ref or got
        out.update(times)
        out[f"{mode}_err"] = max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, ref))
    return out


def main() -> None:
    rows = []
    for text in PATTERNS:
        for n in NS:
            rows.append(row(text, n))
            print(json.dumps({k: round(x, 4) if isinstance(x, float) else x for k, x in rows[-1].items()}),
                  flush=True)
            with open(os.path.join(os.environ.get("OUT", "."), f"gather_ab_d{D}.json"), "w") as f:
                json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                           "triton": triton.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
