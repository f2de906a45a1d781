"""Memory floors of the short-row patterns (session 15, issue #6): kernels that move the bytes our
attention kernels move, in the same order, with no attention arithmetic.

``sparse_transformer_stride`` (``strided(256) & causal``) and ``block_local_causal``
(``blocks(256) & causal``) ask for the same number of pairs at 64k tokens: 256 causal groups of
256 tokens, gathered by residue class in the first and contiguous in the second. At D=64 that is
64 FLOP per byte of Q, K, V and O, so both are bound by HBM, not by the tensor cores. Variants,
one program per (64-row query tile, head[, class]), bf16 ``[1, H, n, D]``:

* ``stream``: each program reads its Q, K and V tile and writes ``O = Q + K + V``: every byte once
  (the floor of any attention kernel at this shape);
* ``group``: as our kernels do, each query tile reads the K / V tiles of its group up to its own
  (1, 2, 3 or 4 of them), and writes O;

each with contiguous tiles and with tiles gathered by residue class (rows ``c + 256 t``, the
residue launch of ``sparse_transformer_stride``). Printed beside our forward on both patterns.

    python benchmarks/dev/roofline.py          # $OUT/roofline.json
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import triton
import triton.language as tl
from devcommon import DT, H, median_ms, node_of

import patternc

N = int(os.environ.get("RL_N", "65536"))
D = int(os.environ.get("RL_D", "64"))
BLOCK, GROUP = 64, 256


@triton.jit
def _rows(u, c, R: tl.constexpr, BLOCK: tl.constexpr):
    """Physical rows of tile ``u`` of class ``c``: contiguous when R == 1, else gathered."""
    t = u * BLOCK + tl.arange(0, BLOCK)
    return c + R * t if R > 1 else t


@triton.jit
def move(Q, K, V, O, n_tiles, R: tl.constexpr, GROUPED: tl.constexpr, PER_GROUP: tl.constexpr,
         D: tl.constexpr, BLOCK: tl.constexpr):
    """Program (query tile, head, class): read Q and K / V tiles, write their sum to O."""
    u = tl.program_id(0)
    h = tl.program_id(1).to(tl.int64)
    c = tl.program_id(2)
    base = h * n_tiles * BLOCK * R * D
    offs_d = tl.arange(0, D)
    rows = _rows(u, c, R, BLOCK)
    acc = tl.load(Q + base + rows[:, None] * D + offs_d[None, :]).to(tl.float32)
    first = (u // PER_GROUP) * PER_GROUP if GROUPED else u
    for j in range(first, u + 1):
        kr = _rows(j, c, R, BLOCK)
        acc += tl.load(K + base + kr[:, None] * D + offs_d[None, :]).to(tl.float32)
        acc += tl.load(V + base + kr[:, None] * D + offs_d[None, :]).to(tl.float32)
    tl.store(O + base + rows[:, None] * D + offs_d[None, :], acc.to(O.dtype.element_ty))


def timed(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gathered: bool, grouped: bool) -> float:
    o = torch.empty_like(q)
    r = GROUP if gathered else 1
    n_tiles = N // BLOCK // r
    grid = (n_tiles, H, r)
    args = (q, k, v, o, n_tiles)
    kw = dict(R=r, GROUPED=grouped, PER_GROUP=GROUP // BLOCK, D=D, BLOCK=BLOCK, num_warps=4)
    move[grid](*args, **kw)
    return median_ms(lambda: move[grid](*args, **kw))


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    gb = 4 * q.numel() * q.element_size() / 1e9  # Q, K, V read and O written once
    rows: list[dict[str, Any]] = []
    for gathered in (False, True):
        for grouped in (False, True):
            ms = timed(q, k, v, gathered, grouped)
            rows.append(dict(variant=("group" if grouped else "stream") + (" gathered" if gathered else ""),
                             ms=ms, tb_s=gb / ms))
    for name in ("block_local/block_local_causal", "sparse_transformer/sparse_transformer_stride"):
        node = node_of(name)
        patternc.attention(q, k, v, node)
        ms = median_ms(lambda node=node: patternc.attention(q, k, v, node))  # type: ignore[misc]
        rows.append(dict(variant="ours " + name.split("/")[1], ms=ms))
    nnz = H * (N // GROUP) * GROUP * (GROUP + 1) // 2
    for r in rows:
        r["tflops_at_this_time"] = 4 * nnz * D / (r["ms"] * 1e-3) / 1e12
        print(f"{r['variant']:48s} {r['ms']:.4f} ms  {r.get('tb_s', float('nan')):.2f} TB/s (once-each bytes)"
              f"  {r['tflops_at_this_time']:.0f} useful TFLOP/s", flush=True)
    meta = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                N=N, D=D, H=H, bytes_once_gb=gb)
    with open(os.path.join(os.environ.get("OUT", "."), "roofline.json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
