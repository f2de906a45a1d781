"""The plan's index tensors expanded from their runs by one kernel launch.

:class:`patternc.plan.Expansion` packs every run of a plan's tables as (flat place of its first
entry, start, count, step); one program per run writes ``start + step * t`` for ``t < count``.
On a GPU this replaces the ~20 torch ops of a vectorized expansion (each one a launch of 10-40 us
of host time) with a fill and one launch: a plan lowered on the host is ready sooner.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from patternc.runtime.launch import launch

BLOCK = 64  # entries written per step: most runs are a few blocks, a causal row is up to 8k


@triton.jit
def expand_runs_kernel(out, prog, n_runs, BLOCK: tl.constexpr):
    """Run ``i`` (column ``i`` of the ``[4, n_runs]`` program) writes its entries into ``out``."""
    i = tl.program_id(0).to(tl.int64)
    base = tl.load(prog + i)
    start = tl.load(prog + n_runs + i)
    count = tl.load(prog + 2 * n_runs + i)
    step = tl.load(prog + 3 * n_runs + i)
    for t0 in range(0, count, BLOCK):
        t = t0 + tl.arange(0, BLOCK)
        tl.store(out + base + t, (start + step * t).to(tl.int32), mask=t < count)


def expand_runs(out: torch.Tensor, prog: torch.Tensor) -> None:
    """Write the entries of the int64 ``[4, runs]`` program ``prog`` into the int32 buffer ``out``
    (same device; a CUDA device, or the CPU on Triton's interpreter)."""
    n = int(prog.shape[1])
    if n:
        launch(expand_runs_kernel, (n,), out, prog.contiguous(), n, BLOCK=BLOCK)
