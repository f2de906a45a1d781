"""What the best dense kernels do on the block-local patterns (session 12, issue #6).

``blocks(b)`` and ``blocks(b) & causal`` are dense attention over ``n / b`` independent ``b``-token
sequences, so dense SDPA on a batched view of the inputs (no copy: ``[n / b, H, b, D]`` with the
heads' stride) computes them exactly. Its flash and cuDNN backends are timed here beside our
kernels and FlexAttention, forward and backward, to tell what the short rows (one to four 64x64
tiles) allow. bf16, B=1, H=16.

    BS_N=65536 BS_DS=64,128 python benchmarks/dev/blocked_sdpa.py    # $OUT/blocked_sdpa.json
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import triton
from devcommon import DT, H, median_ms, node_of
from suite import configure_dynamo

import patternc
from patternc.flex import to_flex

N = int(os.environ.get("BS_N", "65536"))
DS = [int(d) for d in os.environ.get("BS_DS", "64,128").split(",")]
BLOCK = 256
BACKENDS = {"flash": torch.nn.attention.SDPBackend.FLASH_ATTENTION,
            "cudnn": torch.nn.attention.SDPBackend.CUDNN_ATTENTION}


def blocked(t: torch.Tensor) -> torch.Tensor:
    """``[1, H, n, D]`` as ``[n / BLOCK, H, BLOCK, D]`` (a view)."""
    return t.view(1, H, N // BLOCK, BLOCK, t.shape[-1]).transpose(1, 2).reshape(N // BLOCK, H, BLOCK, -1)


def tflops(ms: float, d: int, causal: bool, backward: bool) -> float:
    pairs = H * (N // BLOCK) * (BLOCK * (BLOCK + 1) // 2 if causal else BLOCK * BLOCK)
    return (2.5 if backward else 1.0) * 4 * pairs * d / (ms * 1e-3) / 1e12


def fwd_bwd(fn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            do: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Median forward and backward ms of ``fn(q, k, v)``, and its output."""
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves)
    torch.autograd.grad(out, leaves, do, retain_graph=True)
    return (median_ms(lambda: fn(q, k, v)),
            median_ms(lambda: torch.autograd.grad(out, leaves, do, retain_graph=True)), out.detach())


def sdpa(backend: Any, causal: bool) -> Any:
    """Dense SDPA over the blocks of ``[1, H, n, D]`` inputs, on ``backend``."""
    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with torch.nn.attention.sdpa_kernel(backend):
            o = torch.nn.functional.scaled_dot_product_attention(blocked(q), blocked(k), blocked(v),
                                                                 is_causal=causal)
        d = q.shape[-1]
        return o.reshape(1, N // BLOCK, H, BLOCK, d).transpose(1, 2).reshape(1, H, N, d)
    return run


def row(name: str, causal: bool, flex: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        do: torch.Tensor) -> dict[str, Any]:
    node = node_of(name)
    d = q.shape[-1]
    out: dict[str, Any] = {"pattern": name, "n": N, "d": d}
    f, b, ref = fwd_bwd(lambda q, k, v: patternc.attention(q, k, v, node), q, k, v, do)
    out["ours"] = (f, b)
    bm = to_flex(node, N, device="cuda")
    f, b, _ = fwd_bwd(lambda q, k, v: flex(q, k, v, block_mask=bm), q, k, v, do)
    out["flex"] = (f, b)
    for name_b, backend in BACKENDS.items():
        try:
            f, b, o = fwd_bwd(sdpa(backend, causal), q, k, v, do)
            out[name_b] = (f, b, float((o.float() - ref.float()).abs().max()))
        except Exception as e:  # a backend may refuse the layout
            out[name_b] = repr(e)[:160]
    for who in ("ours", "flex", *BACKENDS):
        if isinstance(out[who], tuple):
            f, b = out[who][:2]
            out[f"{who}_tflops"] = (tflops(f, d, causal, False), tflops(b, d, causal, True))
    return out


def main() -> None:
    configure_dynamo()
    from torch.nn.attention.flex_attention import flex_attention

    flex = torch.compile(flex_attention, dynamic=False)
    rows = []
    for d in DS:
        torch.manual_seed(0)
        q, k, v, do = (torch.randn(1, H, N, d, device="cuda", dtype=DT) for _ in range(4))
        for name, causal in (("block_local/block_local", False), ("block_local/block_local_causal", True)):
            rows.append(row(name, causal, flex, q, k, v, do))
            print(json.dumps(rows[-1]), flush=True)
    with open(os.path.join(os.environ.get("OUT", "."), "blocked_sdpa.json"), "w") as fh:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                   "triton": triton.__version__, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
