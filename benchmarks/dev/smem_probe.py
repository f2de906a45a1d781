"""Shared memory of each backward kernel per config (session 8, issue #6): which of ``dkdv_kernel``
and ``dq_kernel`` runs out of shared memory at 128-key tiles with three stages, and what each
compiled kernel uses otherwise (``CompiledKernel.metadata.shared``, bytes). bf16, B=1, H=16.
For the TTGIR behind these numbers, without a GPU: ``benchmarks/dev/offline_compile.py``.

    SMEM_N=16384 SMEM_D=128 SMEM_PATTERN=block_local/block_local \
        SMEM_CONFIGS='128,128,64,128,128,64,8,3;64,64,64,64,64,64,4,2' python benchmarks/dev/smem_probe.py
"""

from __future__ import annotations

import os
import traceback

import torch
from devcommon import DT, B, H, node_of

from patternc.codegen.backward import BackwardConfig
from patternc.runtime import launch
from patternc.runtime.backward import backward
from patternc.runtime.forward import forward

N = int(os.environ.get("SMEM_N", "16384"))
D = int(os.environ.get("SMEM_D", "128"))
NODE = node_of(os.environ.get("SMEM_PATTERN", "block_local/block_local"))
CONFIGS = [tuple(int(x) for x in c.split(",")) for c in os.environ.get(
    "SMEM_CONFIGS", "128,128,64,128,128,64,8,3").split(";")]


def shared_bytes() -> dict[str, list[int]]:
    """Per kernel name, the shared memory of every specialization compiled so far."""
    out: dict[str, list[int]] = {}
    for fn, lau in launch._LAUNCHERS.values():
        for hit in lau.hits.values():
            if hit is not None:
                out.setdefault(fn.__name__, []).append(int(hit.kernel.metadata.shared))
    return out


def main() -> None:
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(B, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    out, lse = forward(q, k, v, NODE)
    for c in CONFIGS:
        launch._LAUNCHERS.clear()
        try:
            backward(q, k, v, out, lse, do, NODE, config=BackwardConfig(*c))
            torch.cuda.synchronize()
            print(c, "ok", shared_bytes(), flush=True)
        except Exception as e:  # report which launch failed and go on
            frames = [f.name for f in traceback.extract_tb(e.__traceback__)]
            print(c, "failed", type(e).__name__, str(e)[:120], "after", shared_bytes(),
                  "in", [f for f in frames if f.startswith("_launch")], flush=True)


if __name__ == "__main__":
    main()
