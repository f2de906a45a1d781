"""Registers capped where they, not shared memory, bound the programs an SM holds.

How many programs of one launch an SM runs at once is bounded by its shared memory (each
program's pipeline buffers) and by its registers (64K per SM, allocated per warp in units of 256).
Our short-row kernels hide memory latency with other resident programs, not inside one program:
a forward with rows of one to four tiles at 127 registers fits four programs where its shared
memory has room for five. Triton's ``maxnreg`` option makes the compiler fit a budget (spilling
what it must), so the launcher compiles a kernel once, reads its registers and shared memory, and
where registers bind first, compiles it again under the largest budget that admits one program
more, keeping that only when it spills little (``MAX_SPILLS``) and the budget is not far below
what the kernel wanted (``MIN_SHARE``).

H100, bf16, 64k tokens, D=64, ms without / with the cap (``benchmarks/dev/regs_ab.py``,
``benchmarks/results/regs_ab_h100_2026-11-23_s14_*``): ``blocks(256) & causal`` forward 0.233 ->
0.223 (127 -> 96 registers, 4 -> 5 programs), the residue launch of
``(window(256, 0) | strided(256)) & causal`` 0.711 -> 0.674 for the pattern (134 -> 128,
3 -> 4), ``blocks(256)`` backward's dK/dV kernel 0.920 -> 0.877 (160 -> 128, 3 -> 4).

``PATTERNC_REG_CAP=0`` turns it off (A/B timings); results do not change either way (the same
instructions, some of their operands in local memory).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from patternc.runtime.cache import env_flag

REGS_PER_SM = 65536
"""Registers per SM: 64K 32-bit registers on every NVIDIA GPU from Maxwell to Blackwell."""
REG_UNIT = 8
"""Registers per thread are allocated in steps of 8 (256 per warp)."""
RESERVED_SMEM = 1024
"""Shared memory the driver reserves per resident block (sm_80 and later)."""
MAX_BLOCKS = 32
"""Most resident blocks per SM (sm_80 to sm_90)."""
MAX_WARPS = 64
"""Most resident warps per SM (2048 threads, sm_80 to sm_90)."""
MAX_PROGRAMS = 4
"""Caps are tried only where registers hold a kernel to at most this many programs per SM (16
warps at 4 warps each): with more, other programs already hide its loads, and a cap would cost a
second compile for little (``attn_merge``, 7 -> 8 programs at 64 registers: no change measured)."""
MIN_SHARE = 0.7
"""A cap below this share of the registers the kernel wanted is not tried: it would spill heavily
(the backward's dK/dV kernel at 238 -> 128 registers spilled 50-60 words and lost 2-10%)."""
MAX_SPILLS = 16
"""A capped kernel that spills more 4-byte words than this is not used."""


def enabled() -> bool:
    """Caps on, unless ``PATTERNC_REG_CAP=0`` (read per compile: benchmarks time both ways)."""
    return env_flag("PATTERNC_REG_CAP", True)


def _alloc(regs: int) -> int:
    """Registers per thread as allocated."""
    return -(-regs // REG_UNIT) * REG_UNIT


def programs(regs: int, warps: int, shared: int, smem_per_sm: int) -> tuple[int, int]:
    """Programs per SM that registers allow, and that the rest allows (shared memory, block and
    warp slots).

        >>> programs(127, 4, 40960, 233472)  # the 64k D=64 block-local causal forward on an H100
        (4, 5)
    """
    by_regs = REGS_PER_SM // max(1, _alloc(regs) * 32 * warps)
    by_rest = min(MAX_BLOCKS, MAX_WARPS // warps, smem_per_sm // (shared + RESERVED_SMEM))
    return by_regs, by_rest


def cap_for(regs: int, warps: int, shared: int, smem_per_sm: int) -> int | None:
    """The most registers per thread that fit one more program than ``regs`` does, where registers
    allow at most ``MAX_PROGRAMS``, shared memory (and the SM's block and warp slots) have room for
    one more and the budget is at least ``MIN_SHARE`` of ``regs``; None otherwise.

        >>> cap_for(127, 4, 40960, 233472), cap_for(122, 4, 57344, 233472), cap_for(160, 4, 49664, 233472)
        (96, None, 128)
    """
    by_regs, by_rest = programs(regs, warps, shared, smem_per_sm)
    if by_regs >= by_rest or not 0 < by_regs <= MAX_PROGRAMS:
        return None
    budget = REGS_PER_SM // ((by_regs + 1) * 32 * warps) // REG_UNIT * REG_UNIT
    return budget if budget >= MIN_SHARE * regs else None


@functools.lru_cache(maxsize=16)
def smem_per_sm(device: int) -> int:
    """Shared memory of one SM of CUDA device ``device``, in bytes."""
    return int(torch.cuda.get_device_properties(device).shared_memory_per_multiprocessor)


def _compiled(fn: Any, grid: tuple[int, ...], args: Any, kwargs: dict[str, Any]) -> Any:
    """``fn`` compiled for these arguments, not launched, with its registers read."""
    kernel = fn.warmup(*args, grid=grid, **kwargs)
    kernel._init_handles()
    return kernel


def options(fn: Any, grid: tuple[int, ...], args: Any, kwargs: dict[str, Any], device: int) -> dict[str, int]:
    """Extra launch options for ``fn[grid](*args, **kwargs)``: ``{"maxnreg": cap}`` where a cap
    admits one more program per SM at few spills (compiling the kernel once or twice), else ``{}``.
    Empty too where caps are off, the caller set ``maxnreg`` or this Triton lacks the API."""
    if not enabled() or "maxnreg" in kwargs or not hasattr(fn, "warmup"):
        return {}
    kernel = _compiled(fn, grid, args, kwargs)
    regs, meta = getattr(kernel, "n_regs", 0), getattr(kernel, "metadata", None)
    if not regs or meta is None:
        return {}
    cap = cap_for(regs, meta.num_warps, meta.shared, smem_per_sm(device))
    if cap is None:
        return {}
    capped = _compiled(fn, grid, args, {**kwargs, "maxnreg": cap})
    return {"maxnreg": cap} if getattr(capped, "n_spills", MAX_SPILLS + 1) <= MAX_SPILLS else {}
