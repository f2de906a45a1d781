"""Launch the generated forward kernel: ``forward(q, k, v, node, scale) -> (out, lse)``.

No autograd here (``patternc.runtime.autograd`` wires it). Per call: validate the inputs, pick
block sizes, fetch the plan (``patternc.lower``, cached per pattern / lengths / blocks / heads and
moved to the device once), fetch the generated kernel module (``patternc.runtime.cache``), build
the predicate's tables (random draws, token memberships; cached), and launch one grid per head
group.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from patternc import ir
from patternc.codegen import forward as gen
from patternc.codegen import predicate
from patternc.plan import Plan
from patternc.runtime import order, residue, summary, writes
from patternc.runtime.cache import load_module
from patternc.runtime.launch import Prepared, Slot, cached_site

LOG2E = 1.4426950408889634
DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}
MAX_HEAD_DIM = 256


@dataclass(frozen=True)
class ForwardConfig:
    """Block sizes (the plan's) and launch parameters of the forward kernel."""

    block_q: int
    block_k: int
    num_warps: int = 4
    num_stages: int = 2
    split: int | None = None  # most key blocks per work item; None: balance over the GPU's SMs


def interpreting() -> bool:
    """True when Triton runs kernels on its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _pow2_at_least(n: int, lo: int = 16) -> int:
    return max(lo, 1 << max(0, n - 1).bit_length())


@functools.lru_cache(maxsize=256)
def default_config(nq: int, nk: int, head_dim: int, dtype: torch.dtype, interpret: bool) -> ForwardConfig:
    """Blocks per head dim and dtype: 64x64 on the interpreter (few, large numpy steps); on the GPU
    64x64 for 16-bit types up to D=128 (best on sparse patterns in H100 sweeps: band(256) at 64k
    tokens, D=128, 0.96 ms vs 1.16 ms with 128x64 / 8 warps), smaller where fp32 or D=256 would
    overflow shared memory; dense patterns take larger tiles (``dense_config``). Short query sides
    (decode) shrink the query block down to 16."""
    if interpret:
        bq, bk, warps, stages = 64, 64, 4, 1
    elif dtype == torch.float32:
        bq, bk, warps, stages = (64, 32, 4, 2) if head_dim <= 128 else (32, 32, 4, 1)
    elif head_dim <= 64:
        bq, bk, warps, stages = 64, 64, 4, 3
    elif head_dim <= 128:
        bq, bk, warps, stages = 64, 64, 4, 2
    else:
        bq, bk, warps, stages = 64, 64, 4, 2
    return ForwardConfig(min(bq, _pow2_at_least(nq)), min(bk, _pow2_at_least(nk)), warps, stages)


DENSE_BLOCK_DENSITY = 0.3  # above this, a pattern is "dense" (causal-like) for the block choice
# H100 at 64k tokens, causal (benchmarks/dev/kvariants_h100_*.json): D=64 20.6 ms (23.2 ms with
# 128x64 / 4 warps / 4 stages, FlexAttention 21.7 ms); D=128 36.8 ms (38.3 ms with 2 stages,
# 42.0 ms with 128x64 / 8 warps, FlexAttention 39.6 ms). Both need Hopper's shared memory
# (112 and 224 KiB); GPUs with less keep the earlier choice for dense patterns.
DENSE_D64 = ForwardConfig(128, 128, 4, 3)
DENSE_D128 = ForwardConfig(128, 128, 8, 3)
DENSE_D64_SMALL = ForwardConfig(128, 64, 4, 4)  # 80 KiB
LARGE_SMEM = 224 * 1024  # shared memory per block (opt-in) of an H100 / H200: 227 KiB


@functools.lru_cache(maxsize=16)
def large_smem(device: str) -> bool:
    """Whether ``device`` gives a block at least ``LARGE_SMEM`` bytes of shared memory."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return False
    props = torch.cuda.get_device_properties(torch.device(device))
    return int(getattr(props, "shared_memory_per_block_optin", 0)) >= LARGE_SMEM


@functools.lru_cache(maxsize=256)
def dense_config(node: ir.Node, cfg: ForwardConfig, nq: int, nk: int, heads: int, head_dim: int,
                 dtype: torch.dtype, device: str = "cuda", mode: str = "auto") -> ForwardConfig:
    """``cfg``, or larger tiles for dense patterns (block density above ``DENSE_BLOCK_DENSITY`` at
    ``cfg``'s blocks: causal, prefix-LM) with 16-bit inputs and ``head_dim <= 128``, where most
    blocks are FULL and 128x128 tiles beat the 64x64 that sparse patterns prefer. On GPUs with
    Hopper's shared memory, a candidate that the plan's tile counts predict clearly faster
    replaces that rule (``patternc.runtime.tiles``: narrow key blocks for ``fixed``), and short or
    long rows take their own tiles (``tiles.forward_rows``).

    A pattern that runs residue-gathered at ``cfg``'s blocks (``mode``: ``residue.decompose``'s)
    keeps them: its plain plan looks dense (``strided(64) & causal`` at 4k tokens touches every
    causal block), but those blocks never run, and at other blocks the gather may not pay
    (H100, 4k tokens: 128x128 plain masked tiles took 254 us, the gathered launch about 20)."""
    if interpreting() or dtype == torch.float32 or head_dim > 128 or nq < 128 or nk < 128:
        return cfg
    ir.check_heads(node, heads)
    node_c = ir.concretize(node, nk)
    ir.check_arguments(node_c)  # the errors the launch would raise, before the lowering below
    if residue.decompose(node_c, nq, nk, heads, cfg.block_q, cfg.block_k, mode) is not None:
        return cfg
    if not large_smem(device):
        dense_small = DENSE_D64_SMALL if head_dim <= 64 else cfg
        return dense_small if is_dense(node, nq, nk, heads, cfg.block_q, cfg.block_k) else cfg
    if is_dense(node, nq, nk, heads, cfg.block_q, cfg.block_k):
        cfg = DENSE_D64 if head_dim <= 64 else DENSE_D128
    from patternc.runtime import tiles

    rule = (cfg.block_q, cfg.block_k, cfg.num_warps, cfg.num_stages)
    best = tiles.choose(node_c, nq, nk, heads, head_dim, rule, False)
    best = tiles.forward_rows(node_c, nq, nk, heads, head_dim, best)
    return cfg if best == rule else ForwardConfig(*best)


@functools.lru_cache(maxsize=256)
def is_dense(node: ir.Node, nq: int, nk: int, heads: int, block_q: int, block_k: int) -> bool:
    """Whether more than ``DENSE_BLOCK_DENSITY`` of the blocks are visited at these block sizes."""
    from patternc.lower import lower

    plan = lower(ir.concretize(node, nk), nq, nk, block_q=block_q, block_k=block_k, heads=heads)
    total = plan.groups * plan.num_q_blocks * plan.num_k_blocks
    busy = int(plan.forward.num.sum()) + int(plan.forward.full_num.sum())
    return bool(total) and busy > DENSE_BLOCK_DENSITY * total


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Raise ``TypeError`` / ``ValueError`` with a plain message for inputs the kernel cannot take."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [batch, heads, length, head_dim], "
                             f"got shape {tuple(t.shape)}")
        if t.dtype not in DTYPES:
            raise TypeError(f"{name} has dtype {t.dtype}; supported: float16, bfloat16, float32")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    B, H, _, D = q.shape
    if k.shape[0] != B:
        raise ValueError(f"batch sizes differ: q has {B}, k and v have {k.shape[0]}")
    if k.shape[3] != D:
        raise ValueError(f"head dims differ: q has {D}, k and v have {k.shape[3]}")
    if not 1 <= D <= MAX_HEAD_DIM:
        raise ValueError(f"head_dim must be in [1, {MAX_HEAD_DIM}], got {D}")
    Hkv = k.shape[1]
    if Hkv == 0 or H % Hkv:
        raise ValueError(f"the number of query heads ({H}) must be a multiple of the KV heads ({Hkv})")
    if q.device.type == "cpu" and not interpreting():
        raise ValueError("CPU tensors run only on Triton's interpreter: set TRITON_INTERPRET=1 before "
                         "importing triton (or move the tensors to a GPU)")


@functools.lru_cache(maxsize=64)
def cached_plan(node: ir.Node, nq: int, nk: int, block_q: int, block_k: int, heads: int | None,
                device: str) -> Plan:
    """``patternc.lower.lower`` at these lengths, blocks and heads, moved to ``device`` once."""
    from patternc.lower import lower

    return lower(node, nq, nk, block_q=block_q, block_k=block_k, heads=heads).to(device)


@functools.lru_cache(maxsize=256)
def cached_table(arg: predicate.TableArg, nq: int, nk: int, device: str) -> torch.Tensor:
    return predicate.build_table(arg, nq, nk, device)


@functools.lru_cache(maxsize=256)
def kernel_module(spec: gen.ForwardSpec):  # type: ignore[no-untyped-def]
    """The loaded generated module for ``spec`` and the tables its kernels take."""
    source, tables = gen.generate(spec)
    return load_module("forward", spec.key_text(), source), tables


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, node: ir.Node, scale: float | None = None,
            *, plan: Plan | None = None, config: ForwardConfig | None = None,
            residue_mode: str | None = None, _checked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T * scale + mask) v`` and its natural-log LSE (float32 ``[B, H, nq]``, ``-inf``
    on rows with no keys). q ``[B, H, nq, D]``, k / v ``[B, Hkv, nk, D]``, ``Hkv`` divides ``H``.

    ``plan`` (tests, tools) replaces the lowering; its blocks then set the kernel's blocks (and
    no branch runs residue-gathered). ``residue_mode``: ``auto`` / ``force`` / ``off``
    (``patternc.runtime.residue``; default ``$PATTERNC_RESIDUE`` or ``auto``). ``_checked``: the
    caller already ran :func:`check_inputs` (``patternc.attention``: small calls are host-bound).
    """
    if not _checked:
        check_inputs(q, k, v)
    B, H, nq, D = q.shape
    Hkv, nk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    if scale <= 0:  # the kernel applies the scale after the row max (codegen.forward): it needs scale > 0
        q, scale = (-q, -scale) if scale < 0 else (torch.zeros_like(q), 1.0)  # the same scores, exactly
    out = torch.empty((B, H, nq, D), dtype=q.dtype, device=q.device)
    lse = torch.empty((B, H, nq), dtype=torch.float32, device=q.device)
    if nk == 0:  # nothing to attend to: every row is empty
        ir.check_heads(node, H)
        return out.zero_(), lse.fill_(float("-inf"))
    cfg = config or default_config(nq, nk, D, q.dtype, interpreting())
    dev = str(q.device)
    summ = summary.choose(node, nq, nk) if config is None and plan is None else None
    mode = residue_mode or residue.default_mode()
    if config is None and plan is None and summ is None:
        from patternc.runtime import autotune

        dense = dense_config(node, cfg, nq, nk, H, D, q.dtype, dev, mode)
        cfg = autotune.forward_config(node, q, k, v, scale, dense)
    if plan is not None:
        cfg = ForwardConfig(plan.block_q, plan.block_k, cfg.num_warps, cfg.num_stages, cfg.split)
        launches: tuple[_Launch, ...] = (_setup(node, B, H, Hkv, nq, nk, D, q.dtype, dev, cfg, plan),)
    elif summ is not None:
        launches = _summary_launches(summ, B, H, Hkv, nq, D, q.dtype, dev)
    else:
        launches = _launches(node, B, H, Hkv, nq, nk, D, q.dtype, dev, cfg, mode)
    if out.numel():
        if q.is_cuda and q.device.index != torch.cuda.current_device():
            with torch.cuda.device(q.device):  # Triton launches on the current device
                for launch in launches:
                    launch.run(q, k, v, out, lse, scale, B)
        else:
            for launch in launches:
                launch.run(q, k, v, out, lse, scale, B)
    return out, lse


@functools.lru_cache(maxsize=128)
def _launches(node: ir.Node, B: int, H: int, Hkv: int, nq: int, nk: int, D: int, dtype: torch.dtype,
              device: str, cfg: ForwardConfig, mode: str) -> tuple[_Launch, ...]:
    """The plain launch of the pattern, or of its rest followed by one merging launch per group
    of residue branches (``patternc.runtime.residue``)."""
    ir.check_heads(node, H)
    node_c = ir.concretize(node, nk)
    ir.check_arguments(node_c)
    dec = residue.decompose(node_c, nq, nk, H, cfg.block_q, cfg.block_k, mode)
    if dec is None:
        return (_cached_setup(node, B, H, Hkv, nq, nk, D, dtype, device, cfg),)
    out = [_cached_setup(dec.rest, B, H, Hkv, nq, nk, D, dtype, device, cfg)]
    for part in dec.parts:
        out.append(_cached_setup(part.node, B, H, Hkv, part.nq, part.nk, D, dtype, device,
                                 _residue_config(part, D, dtype), (part.r, part.u0, part.off)))
    return _planned(out)


def _residue_config(part: residue.Gathered, D: int, dtype: torch.dtype) -> ForwardConfig:
    """Tiles of a residue launch: the head dim's rule at its virtual lengths. Gathered rows are
    short and regular: never split (the merge epilogue needs whole rows). (Until session 16 many
    classes of short rows took two stages; with one loop over both kinds of block (``ONE_LOOP``)
    three win: H100, 64k, D=64, ``sparse_transformer_stride`` 0.230 -> 0.223 ms,
    ``sparse_transformer_strided_heads`` 0.280 -> 0.277, ``benchmarks/dev/one_loop_ab.py``.)"""
    cfg = default_config(part.nq, part.nk, D, dtype, interpreting())
    return dataclasses.replace(cfg, split=1 << 30)


def _planned(launches: list[_Launch]) -> tuple[_Launch, ...]:
    """``launches`` (a rest, then merging launches) with each head group stored once, by the
    first launch with work in it, and merged into by the later ones (``runtime.writes``): no
    launch writes zeros that a later one reads back. Launches over different head groupings
    keep the general rule: the rest stores every group, unless it has no block at all; then the
    first merging launch stores instead (every group, so heads without work get 0 and ``-inf``)."""
    if len({len(launch.active) for launch in launches}) == 1:
        return tuple(dataclasses.replace(launches[i], modes=modes)
                     for i, modes in writes.plan([launch.active for launch in launches]))
    if len(launches) > 1 and not any(launches[0].active):
        launches = [_storing(launches[1]), *launches[2:]]
    return tuple(launches)


def _storing(launch: _Launch) -> _Launch:
    return dataclasses.replace(launch, modes=(writes.STORE,) * len(launch.active))


def _merging(launch: _Launch) -> _Launch:
    """``launch`` merging into the launches before it, in the groups it has work in."""
    return dataclasses.replace(launch, modes=tuple(writes.ADD if a else writes.SKIP for a in launch.active))


def _part_config(node: ir.Node, nq: int, nk: int, H: int, D: int, dtype: torch.dtype, device: str,
                 whole_rows: bool) -> ForwardConfig:
    """The tiles of one part of a decomposed pattern, chosen as for a pattern of its own;
    ``whole_rows``: never split (a merging launch's epilogue needs whole rows)."""
    cfg = dense_config(node, default_config(nq, nk, D, dtype, interpreting()), nq, nk, H, D, dtype, device)
    return dataclasses.replace(cfg, split=1 << 30) if whole_rows else cfg


@functools.lru_cache(maxsize=128)
def _summary_launches(dec: summary.Summary, B: int, H: int, Hkv: int, nq: int, D: int, dtype: torch.dtype,
                      device: str) -> tuple[_Launch, ...]:
    """The summary gather (``patternc.runtime.summary``): the rest on the physical keys, then the
    summary part on the compact keys, merged into the rest's ``(out, lse)`` in its epilogue."""
    cfg = _part_config(dec.rest, nq, dec.nk, H, D, dtype, device, False)
    rest = _cached_setup(dec.rest, B, H, Hkv, nq, dec.nk, D, dtype, device, cfg)
    cfg = _part_config(dec.single, nq, dec.nks, H, D, dtype, device, True)
    part = _cached_setup(dec.steps, B, H, Hkv, nq, dec.nks, D, dtype, device, cfg)
    return _planned([rest, _merging(dataclasses.replace(part, gather=dec.index(device)))])


@dataclass(frozen=True)
class Work:
    """One head group's schedule: ``items [n, 8]`` int32 rows (query block, full lo, full hi,
    partial lo, partial hi, slot, full base, partial base), most expensive first; ``merge [m, 3]``
    rows (query block, first slot, end slot) for the split rows; ``slots`` workspace slots per
    (batch, head). ``runs``: whether every row's FULL / PARTIAL key blocks are consecutive from
    its base (the kernel computes them instead of loading them: ``Runs.bases``). ``mixed``: the
    rows list both kinds, walked by one loop (``codegen.forward``'s ``MIXED``; ``ONE_LOOP``)."""

    items: torch.Tensor
    merge: torch.Tensor
    slots: int
    runs: tuple[bool, bool] = (False, False)
    mixed: bool = False


def work_items(full_num: np.ndarray, num: np.ndarray, split: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Split each query block's FULL-then-PARTIAL block list into slices of at most ``split`` blocks
    (a row of ``c > split`` blocks becomes ``ceil(c / split)`` near-equal slices, each with its own
    workspace slot) and order the items by cost, largest first where costs spread
    (``runtime.order``): heavy rows no longer serialize the kernel behind one program, and big
    items start before small ones fill the gaps. Vectorized: milliseconds for a million tokens."""
    f = np.asarray(full_num, dtype=np.int64)
    c = f + np.asarray(num, dtype=np.int64)
    heavy = c > max(1, split)
    size = np.where(heavy, -(-c // np.maximum(1, -(-c // max(1, split)))), np.maximum(c, 1))
    pieces = np.where(heavy, -(-c // size), 1)  # slices per row (1 for light and empty rows)
    row = np.repeat(np.arange(c.size), pieces)
    first = np.cumsum(pieces) - pieces  # index of each row's first item
    lo = (np.arange(row.size) - first[row]) * size[row]
    hi = np.minimum(c[row], lo + size[row])
    fr = f[row]
    is_split = heavy[row]
    slot = np.where(is_split, np.cumsum(is_split) - 1, -1)
    items = np.stack([row, np.minimum(lo, fr), np.minimum(hi, fr), np.maximum(lo - fr, 0),
                      np.maximum(hi - fr, 0), slot], axis=1)
    items = items[order.heaviest_first(hi - lo)].astype(np.int32)
    split_rows = np.flatnonzero(heavy)
    starts = np.cumsum(pieces[split_rows]) - pieces[split_rows]
    merge = np.stack([split_rows, starts, starts + pieces[split_rows]], axis=1).astype(np.int32)
    return items.reshape(-1, 6), merge.reshape(-1, 3), int(is_split.sum())


MIN_SPLIT_GAIN = 128
"""The backward's heavy tiles are split only when that shortens the longest work item by more
blocks than this (``runtime.backward.schedule``: split buffers and their epilogue)."""
FWD_MIN_SPLIT_GAIN = 16
"""The forward splits a heavy row only when that shortens its longest work item by more blocks than
this. (Until session 13 this was ``MIN_SPLIT_GAIN``, for a merge launch's host time: heavy rows at
4k and 16k tokens ran whole, and at 16k a global row of 256 blocks on one program took half the
forward's time. H100, bf16, D=64, Longformer forward at 16k: 0.349 ms whole, 0.164 in slices of
64; at 4k 0.093 whole, 0.057 in slices of 32, merge launch included:
``benchmarks/results/splits_h100_2026-11-23_s13_*``.)"""
PROGRAMS_PER_SM = 4
"""Most programs of one forward launch resident on an SM (``_auto_split``)."""
HEAVY_SHARE = 1 / 3
"""A launch whose heavy rows hold at least this share of its blocks (the global rows of a
pattern's rest launch, beside its residue launches) has little else to share the SMs with: its
slices run nearly alone, at about twice one program's speed among ``PROGRAMS_PER_SM``
(``_auto_split``)."""


def _auto_split(rows: np.ndarray, copies: int, sms: int, programs: int) -> int:
    """Blocks per work item for rows of ``rows`` blocks, each run ``copies`` times (batch x heads):
    at least 16 (merging costs), and such that one item takes no longer than an SM's share of the
    launch. An SM runs ``programs`` programs at a time (``programs_per_sm``), so an item of ``s``
    blocks lasts about ``programs * s`` blocks of its SM's time, against ``total / sms`` for the
    SM's share; where the rows longer than that hold ``HEAVY_SHARE`` of the blocks, about
    ``2 * s``. Whole rows (no split) where the split would shorten the longest item by at most
    ``FWD_MIN_SPLIT_GAIN`` blocks.

        >>> globals_row = np.array([256] + [11] * 255)  # Longformer at 16k tokens, 64-token blocks
        >>> _auto_split(globals_row, 16, 132, 4), _auto_split(globals_row, 16, 132, 2)
        (93, 186)
        >>> _auto_split(np.array([256] + [1] * 255), 16, 132, 4)  # its global rows dominate: 2
        31
    """
    total = copies * int(rows.sum())
    split = max(16, -(-total // (programs * sms)))
    if programs > 2 and copies * int(rows[rows > split].sum()) >= HEAVY_SHARE * total:
        split = max(16, -(-total // (2 * sms)))
    heaviest = int(rows.max(initial=0))
    return split if heaviest - split > FWD_MIN_SPLIT_GAIN else max(1, heaviest)


def programs_per_sm(cfg: ForwardConfig, head_dim: int, itemsize: int, smem: int) -> int:
    """How many programs of the forward kernel at ``cfg`` share an SM with ``smem`` bytes of shared
    memory, as that bounds them (the Q tile and ``num_stages`` K and V tiles in flight), at most
    ``PROGRAMS_PER_SM``: 4 at D=64 with 64x64 tiles, 2 at D=128 (H100: 228 KiB)."""
    per = (cfg.block_q + 2 * cfg.num_stages * cfg.block_k) * _pow2_at_least(head_dim) * itemsize
    return max(1, min(PROGRAMS_PER_SM, smem // per))


@functools.lru_cache(maxsize=16)
def sm_resources(device: str) -> tuple[int, int]:
    """(SMs, shared memory bytes per SM) of ``device``; off the GPU, a stand-in (4, 96 KiB) that
    only shapes the interpreter's work items."""
    if not device.startswith("cuda"):
        return 4, 96 * 1024
    props = torch.cuda.get_device_properties(torch.device(device))
    return props.multi_processor_count, int(getattr(props, "shared_memory_per_multiprocessor", LARGE_SMEM))


@dataclass(frozen=True)
class _Launch:
    """Everything a call needs besides the tensors: built once per (pattern, shapes, config)."""

    module: Any
    cfg: ForwardConfig
    spec: gen.ForwardSpec
    groups: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per head group: idx, full_idx
    work: tuple[Work, ...]  # per head group
    tables: tuple[torch.Tensor, ...]
    heads: int
    nq: int
    nk: int
    slots: int  # most workspace slots of any head group
    tables_dummy: torch.Tensor  # a 1-element tensor for pointer arguments that are not used
    res: tuple[int, int, int] | None = None  # residue launch: (r, u0, off)
    active: tuple[bool, ...] = ()  # the head groups with work
    gather: torch.Tensor | None = None  # summary launch: its keys, by physical index
    # per head group: skip it, store, or merge into the (out, lse) of the launches before
    # (disjoint parts; ``runtime.writes``)
    modes: tuple[int, ...] = ()
    # the prepared launches per call layout (``run``); never copied by ``dataclasses.replace``,
    # whose copy launches differently
    sites: dict[tuple[Any, ...], tuple[Prepared, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    def run(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
            scale: float, batch: int) -> None:
        if self.gather is not None:
            k, v = summary.gather(k, v, self.gather)
        # workspace of split rows: per (batch x head, slot) an fp32 acc tile, row maxima and row sums
        n = batch * (self.heads // len(self.groups)) * self.slots * self.cfg.block_q
        if n:  # one allocation for the three (offsets are multiples of block_q >= 16 elements)
            m = n * self.spec.block_d
            ws = torch.empty(m + 2 * n, dtype=torch.float32, device=q.device)
            ws_o, ws_m, ws_l = ws[:m], ws[m:m + n], ws[m + n:]
        else:  # no split rows: never read or written
            ws_o = ws_m = ws_l = self.tables_dummy
        t = (q, k, v, out, lse, ws_o, ws_m, ws_l)
        # everything but the tensors follows from this key: build the launches once, then fill in tensors
        key = (scale, batch, q.shape, k.shape, *[x.stride() for x in t[:4]])
        for site in cached_site(self.sites, key, lambda: self._prepare(t, scale, batch)):
            site(t)

    def _prepare(self, t: tuple[torch.Tensor, ...], scale: float, batch: int) -> tuple[Prepared, ...]:
        """The launches of a call whose tensors have the layout of ``t``: per head group its
        ``attn_fwd``, and ``attn_merge`` where the group splits rows."""
        q, k, v, out = t[:4]
        s = _SLOTS
        per_group = self.heads // len(self.groups)
        strides = (*q.stride(), *k.stride(), *v.stride(), *out.stride())
        r, u0, off = self.res or (1, 0, 0)
        # every key of every block exists (residue launches: every class has whole blocks of keys)
        even_n = self.nk % self.cfg.block_k == 0 and residue.whole_classes(q.shape[2], k.shape[2], r)[1]
        sites = []
        for g, ((idx, fidx), work) in enumerate(zip(self.groups, self.work)):
            if self.modes[g] == writes.SKIP:
                continue
            h0 = g * per_group
            # heaviest first across heads when rows are split (their slices are the long items);
            # else work items fastest, so that programs running together share K / V in L2
            heads_fast = work.slots > 0
            grid = ((batch * per_group, work.items.shape[0], r) if heads_fast
                    else (work.items.shape[0], batch * per_group, r))
            sites.append(Prepared(
                self.module.attn_fwd, grid,
                (*s[:5], work.items, idx, fidx, *self.tables, *s[5:],
                 scale * LOG2E, self.nq, self.nk, h0, per_group, self.heads,
                 *strides, idx.stride(0), fidx.stride(0), work.slots, r, u0, off, q.shape[2], k.shape[2]),
                dict(PRED=self.spec.group_pred[g], EVEN_N=even_n, RETURN_LSE=True,
                     RES=self.res is not None, ACCUM=self.modes[g] == writes.ADD, HEADS_FAST=heads_fast,
                     RUN_F=work.runs[0], RUN_P=work.runs[1], MIXED=work.mixed,
                     num_warps=self.cfg.num_warps, num_stages=self.cfg.num_stages)))
            if work.merge.shape[0]:
                sites.append(Prepared(
                    self.module.attn_merge, (batch * per_group, work.merge.shape[0]),
                    (s[3], s[4], work.merge, *s[5:], self.nq, h0, per_group, self.heads, *out.stride(),
                     work.slots), dict(RETURN_LSE=True)))
        return tuple(sites)


_SLOTS = tuple(Slot(i) for i in range(8))  # q, k, v, out, lse and the split rows' workspace: per call


COMPUTED_BLOCKS = True
"""Rows whose key blocks are consecutive compute them from the WORK row (``Work.runs``); False
loads every index from the tables (tests, A/B timings; then ``patternc.runtime.reset()``).
H100, 64k, D=64, computed / loaded, ms. Plain launches, two alternating rounds
(``benchmarks/dev/computed_ab.py``, ``results/computed_ab_h100_2026-11-23_s12_8e9b08e_*``):
``blocks(256) & causal`` 0.235 / 0.242, ``blocks(256)`` 0.286 / 0.291, ``causal`` 20.08 / 20.66.
Residue launches, the lower of two rounds (``benchmarks/dev/computed_ab.py``,
``results/stride_ab_h100_2026-11-23_s15_residue_n65536_d64.json``): ``longformer_dilated``
0.753 / 0.812, ``longformer_heads`` 0.729 / 0.765, ``(window(127, 0) | strided(128)) & causal``
0.621 / 0.655, ``dilated_sliding_window`` 0.505 / 0.523, ``dilated(256, 2) | global([0..16])``
0.800 / 0.806; the Sparse Transformer's ``strided`` family ties (session 12 had measured them
slower with computed blocks, before the residue launches' two-stage rule and whole classes).
(A block-local kernel without work items, ``benchmarks/dev/tma_fwd.py``, gains more from the same
change: 0.240 -> 0.220 ms.)"""


ONE_LOOP = True
"""Head groups whose rows list both FULL and PARTIAL key blocks walk them in one loop (``Work.mixed``),
so that the pipeline prefetches the first PARTIAL block while the last FULL ones compute; False
keeps a loop per kind (tests, A/B timings; then ``patternc.runtime.reset()``). Found with a
table-free kernel (``benchmarks/dev/gather_tma.py``, H100, 64k, D=64, 3 stages): one loop ran
``strided(256) & causal``'s gathered groups in 0.218 ms where ours took 0.253, ``blocks(256) &
causal`` in 0.203 against 0.224."""


ONE_LOOP_MAX_TILE = 64 * 64
"""The largest tile (``block_q * block_k``) whose rows may run one loop (``_one_loop``)."""


def _one_loop(full_num: np.ndarray, num: np.ndarray, cfg: ForwardConfig) -> bool:
    """Whether a head group with these FULL / PARTIAL counts per row walks them in one loop at
    ``cfg``'s tiles: rows of both kinds, shorter on average than ``tiles.LONG_ROWS`` tiles, of
    at most ``ONE_LOOP_MAX_TILE`` elements. The dense patterns' 128x128 tiles keep a loop per
    kind: one loop lost there (H100, D=64, ms: ``causal`` at 4k (16 tiles a row) 0.138 ->
    0.147, at 64k (512) 19.9 -> 21.0; ``prefix_lm`` at 4k 0.161 -> 0.172)."""
    from patternc.runtime import tiles

    return ONE_LOOP and cfg.block_q * cfg.block_k <= ONE_LOOP_MAX_TILE and bool(
        full_num.any() and num.any() and (full_num + num).mean() < tiles.LONG_ROWS)


def _rows(t: torch.Tensor) -> torch.Tensor:
    # an index table with no columns still needs a valid pointer and row stride (never read)
    return t if t.shape[-1] else torch.zeros((t.shape[0], 1), dtype=t.dtype, device=t.device)


def _setup(node: ir.Node, B: int, H: int, Hkv: int, nq: int, nk: int, D: int, dtype: torch.dtype,
           device: str, cfg: ForwardConfig, plan: Plan | None,
           res: tuple[int, int, int] | None = None) -> _Launch:
    ir.check_heads(node, H)
    node_c = ir.concretize(node, nk)
    ir.check_arguments(node_c)
    spec = gen.spec_for(node_c, nk, block_q=cfg.block_q, block_k=cfg.block_k, head_dim=D,
                        dtype=DTYPES[dtype], gqa=H // Hkv, upcast=dtype == torch.bfloat16 and interpreting())
    module, tables = kernel_module(spec)
    if plan is None:
        plan = cached_plan(node_c, nq, nk, cfg.block_q, cfg.block_k, H, device)
    else:
        plan = plan.to(device)
    _check_plan(plan, nq, nk, cfg, len(spec.group_pred))
    fw = plan.forward
    G = len(spec.group_pred)
    groups = tuple((_rows(fw.idx[g]), _rows(fw.full_idx[g])) for g in range(G))
    num, full_num = fw.num.cpu().numpy(), fw.full_num.cpu().numpy()
    (run_p, base_p), (run_f, base_f) = (r.bases(G, num.shape[1]) for r in (fw.runs, fw.full_runs))
    sms, smem = sm_resources(device)
    programs = programs_per_sm(cfg, D, dtype.itemsize, smem)
    work = []
    for g in range(G):
        # each head group is its own launch: its split fills the GPU with that group's work alone
        # (a light group split by the whole pattern's total ran its heavy row on a few programs)
        blocks = num[g] + full_num[g]
        split = cfg.split or _auto_split(blocks, B * (H // G), sms, programs)
        items, merge, slots = work_items(full_num[g], num[g], split)
        items = np.concatenate([items, base_f[g][items[:, 0], None], base_p[g][items[:, 0], None]], axis=1)
        work.append(Work(torch.from_numpy(items).to(device), torch.from_numpy(merge).to(device), slots,
                         (bool(run_f[g]) and COMPUTED_BLOCKS, bool(run_p[g]) and COMPUTED_BLOCKS),
                         _one_loop(full_num[g], num[g], cfg)))
    tabs = tuple(cached_table(t, nq, nk, device) for t in tables)
    dummy = torch.zeros(1, dtype=torch.float32, device=device)
    active = tuple(bool(num[g].sum() + full_num[g].sum()) for g in range(G))
    return _Launch(module, cfg, spec, groups, tuple(work), tabs, H, nq, nk, max(w.slots for w in work), dummy,
                   res, active, modes=tuple(writes.STORE if res is None else writes.ADD if a else writes.SKIP
                                            for a in active))


@functools.lru_cache(maxsize=128)
def _cached_setup(node: ir.Node, B: int, H: int, Hkv: int, nq: int, nk: int, D: int, dtype: torch.dtype,
                  device: str, cfg: ForwardConfig, res: tuple[int, int, int] | None = None) -> _Launch:
    return _setup(node, B, H, Hkv, nq, nk, D, dtype, device, cfg, None, res)


def _check_plan(plan: Plan, nq: int, nk: int, cfg: ForwardConfig, groups: int) -> None:
    if (plan.nq, plan.nk, plan.block_q, plan.block_k) != (nq, nk, cfg.block_q, cfg.block_k):
        raise ValueError(f"plan built for nq={plan.nq}, nk={plan.nk}, blocks {plan.block_q}x{plan.block_k}; "
                         f"call has nq={nq}, nk={nk}, blocks {cfg.block_q}x{cfg.block_k}")
    if plan.groups != groups:
        raise ValueError(f"plan has {plan.groups} head groups, the pattern {groups}")


def predicate_mask(node: ir.Node, nq: int, nk: int, heads: int | None = None,
                   device: str | torch.device = "cpu", block: int = 32) -> torch.Tensor:
    """The pattern's mask as the generated predicate computes it, ``[nq, nk]`` or ``[heads, nq, nk]``
    bool: every pair evaluated, no plan (tests and debugging of the emitted code)."""
    node_c = ir.concretize(node, nk)
    ir.check_arguments(node_c)
    if heads is not None:
        ir.check_heads(node_c, heads)
    spec = gen.spec_for(node_c, nk, block_q=block, block_k=block, head_dim=16, dtype="float32", gqa=1)
    module, tables = kernel_module(spec)
    dev = str(device)
    tabs = [cached_table(t, nq, nk, dev) for t in tables]
    groups = len(spec.group_pred)
    planes = []
    for g in range(groups):
        out = torch.zeros((nq, nk), dtype=torch.int8, device=device)
        if out.numel():
            grid = (-(-nq // block), -(-nk // block))
            module.pattern_mask[grid](out, nq, nk, out.stride(0), *tabs, PRED=spec.group_pred[g])
        planes.append(out.bool())
    if heads is None:
        if groups != 1:
            raise ir.PatternError("a heads(...) pattern needs the number of heads")
        return planes[0]
    return torch.stack([planes[h * groups // heads] for h in range(heads)])
