"""Launch the generated backward kernels: ``backward(q, k, v, out, lse, do, node, scale)``.

No autograd here (``patternc.runtime.autograd`` wires it); this is the plain function that
turns saved forward results and ``dO`` into ``(dQ, dK, dV)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
import triton

from patternc import ir
from patternc.codegen import backward as gen
from patternc.codegen import predicate
from patternc.plan import BlockTables, Plan
from patternc.runtime import autotune, order, residue, summary, writes
from patternc.runtime.cache import load_module
from patternc.runtime.forward import (
    MIN_SPLIT_GAIN,
    cached_plan,
    cached_table,
    interpreting,
    large_smem,
)
from patternc.runtime.launch import Prepared, Slot, cached_site

Grads = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # dQ, dK, dV


@functools.lru_cache(maxsize=256)
def kernels(node: ir.Node, groups: int,
            steps: int = gen.UNROLLED) -> tuple[ModuleType, tuple[predicate.TableArg, ...]]:
    """The loaded module of a concrete pattern's backward kernels and the tables they read."""
    source, tables = gen.generate(node, groups, steps)
    return load_module("backward", source, source), tables


_PLACEHOLDERS: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _nonempty(t: torch.Tensor) -> torch.Tensor:
    # a table with no columns still needs a valid pointer (never read: its counts are 0); one shared
    # placeholder per dtype and device instead of an allocation and a fill kernel on every call
    if t.numel():
        return t
    key = (t.dtype, t.device)
    hit = _PLACEHOLDERS.get(key)
    if hit is None:
        hit = _PLACEHOLDERS[key] = torch.zeros(1, dtype=t.dtype, device=t.device)
    return hit


@dataclass(frozen=True)
class Schedule:
    """The work items of one backward kernel and where split tiles' partial sums go.

    ``items[i] = (tile, c, nc, slot)``: program ``i`` (per head) runs list entries ``c, c + nc, ...``
    of ``tile``; ``slot >= 0`` when ``nc > 1``, the tile's float32 accumulator in the split buffer.
    ``rows`` are the output rows of the split tiles and ``sel`` their places in that buffer.
    """

    items: torch.Tensor
    n_slots: int
    rows: torch.Tensor
    sel: torch.Tensor


_SCHEDULES: dict[tuple[int, int, int, int], tuple[torch.Tensor, Schedule]] = {}


def schedule(tables: BlockTables, tile: int, block: int, n: int, chunk: int) -> Schedule:
    """Work items over tiles of ``tile`` rows (``n`` rows in plan blocks of ``block``).

    Global rows / columns make a few tiles visit every block while the rest visit a handful:
    such tiles are split into chunks of about ``chunk`` blocks (see ``BackwardConfig.chunk``)
    and items launch heaviest first (where costs spread, ``runtime.order``) so that the long
    ones start early. Cached per table.
    """
    key = (id(tables.num), tile, n, chunk)
    hit = _SCHEDULES.get(key)
    if hit is not None and hit[0] is tables.num:
        return hit[1]
    work = (tables.num + tables.full_num).max(0).values.cpu().numpy().astype(np.int64)
    per = np.repeat(work, block // tile)[: -(-n // tile)]
    busy = per[per > 0]
    target = chunk or (max(8, int(np.ceil(2 * busy.mean()))) if busy.size else 1)
    if not chunk and busy.size and busy.max() - target <= MIN_SPLIT_GAIN:
        target = int(busy.max())  # too short to pay for the split buffers and their epilogue
    nc = np.maximum(1, -(-per // target))
    slot = np.full(per.size, -1, dtype=np.int64)
    split = np.flatnonzero(nc > 1)
    slot[split] = np.arange(split.size)
    tiles = np.repeat(np.arange(per.size), nc)
    c = np.arange(tiles.size) - np.repeat(np.cumsum(nc) - nc, nc)
    heaviest_first = order.heaviest_first(per[tiles] / nc[tiles])
    items = np.stack([tiles, c, nc[tiles], slot[tiles]], 1)[heaviest_first]
    pos = (split[:, None] * tile + np.arange(tile)[None, :]).reshape(-1)
    sel = np.arange(pos.size)
    dev = tables.num.device
    out = Schedule(torch.from_numpy(np.ascontiguousarray(items, dtype=np.int32)).to(dev), int(split.size),
                   torch.from_numpy(pos[pos < n]).to(dev), torch.from_numpy(sel[pos < n]).to(dev))
    if len(_SCHEDULES) > 256:
        _SCHEDULES.clear()
    _SCHEDULES[key] = (tables.num, out)
    return out


def _lastdim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


@dataclass(frozen=True)
class _Setup:
    """Everything a call needs that depends only on (pattern, shapes, dtype, device, config)."""

    module: ModuleType
    tables: tuple[torch.Tensor, ...]
    plan: Plan
    cfg: gen.BackwardConfig
    groups: int
    sk: Schedule
    sq: Schedule
    dp: int
    prec: str
    upcast: bool
    dummy: torch.Tensor
    active: tuple[bool, ...]  # per head group of the pattern: has blocks
    # the prepared launches of this set-up per call layout (``_launch``); never copied by
    # ``dataclasses.replace``, whose copy launches other tiles
    sites: dict[tuple[Any, ...], tuple[Prepared, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)


def _setup(node: ir.Node, H: int, nq: int, nk: int, D: int, dtype: torch.dtype, device: str,
           config: gen.BackwardConfig | None, plan: Plan | None) -> _Setup:
    groups = ir.head_counts(node)
    node = ir.concretize(node, nk)
    cfg = config or gen.default_config(D, interpreting())
    if plan is None:
        plan = cached_plan(node, nq, nk, cfg.block_q, cfg.block_k, H, device)
    plan = plan.to(device)
    cfg = gen.fit_config(cfg, plan.block_q, plan.block_k)
    module, table_args = kernels(node, groups, cfg.steps)
    # Triton's interpreter multiplies bfloat16 wrongly (CPU only): compute in float32 there
    upcast = interpreting() and dtype == torch.bfloat16
    blocks = (plan.forward.num + plan.forward.full_num).sum(1).cpu().tolist()  # per table group
    active = tuple(blocks[g * plan.groups // groups] > 0 for g in range(groups))
    return _Setup(module, tuple(cached_table(t, nq, nk, device) for t in table_args), plan, cfg, groups,
                  schedule(plan.backward, cfg.bn1, plan.block_k, nk, cfg.chunk),
                  schedule(plan.forward, cfg.bm2, plan.block_q, nq, cfg.chunk),
                  max(16, triton.next_power_of_2(D)), "ieee" if dtype == torch.float32 or upcast else "tf32",
                  upcast, torch.zeros(1, device=device), active)


@functools.lru_cache(maxsize=128)
def _cached_setup(node: ir.Node, H: int, nq: int, nk: int, D: int, dtype: torch.dtype, device: str,
                  config: gen.BackwardConfig | None) -> _Setup:
    # one lookup per call instead of a dozen: small backward calls are bound by host time
    return _setup(node, H, nq, nk, D, dtype, device, config, None)


def backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
             do: torch.Tensor, node: ir.Node, scale: float | None = None, *, plan: Plan | None = None,
             config: gen.BackwardConfig | None = None, dlse: torch.Tensor | None = None,
             residue_mode: str | None = None) -> Grads:
    """Gradients of ``softmax(q k^T * scale + mask) v`` given ``out``, its natural-log ``lse``
    (``[B, H, nq]``, ``-inf`` on rows without keys) and ``do``.

    ``dlse`` is a gradient reaching the LSE (when the caller used it). ``plan`` defaults to
    ``patternc.lower.lower`` at the config's block sizes (a given plan runs as plain blocks).
    ``residue_mode``: ``auto`` / ``force`` / ``off`` (``patternc.runtime.residue``; default
    ``$PATTERNC_RESIDUE`` or ``auto``): residue branches run gathered and add their gradients.
    """
    D = q.shape[3]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    if plan is not None or config is not None or residue_mode is not None:
        return _backward(q, k, v, out, lse, do, node, scale, plan, config, dlse, residue_mode)[0]
    # a call like one before (pattern, shapes, layouts, modes) repeats its launches: one lookup
    key = _call_key(q, k, v, out, lse, do, dlse, node, scale)
    hit = _CALLS.get(key)
    if hit is not None and hit.node is node:
        return hit(q, k, v, out, lse, do, dlse)
    grads, call = _backward(q, k, v, out, lse, do, node, scale, None, None, dlse, None)
    if call is not None:
        cached_site(_CALLS, key, lambda: call)
    return grads


def _backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
              do: torch.Tensor, node: ir.Node, scale: float, plan: Plan | None,
              config: gen.BackwardConfig | None, dlse: torch.Tensor | None,
              residue_mode: str | None) -> tuple[Grads, _Call | None]:
    """:func:`backward` with every choice made on the call; also its work as a :class:`_Call`
    where a call of the same key can repeat it (None where not)."""
    B, H, nq, D = q.shape
    nk = k.shape[2]
    # the launches of a call with copied inputs are for the copies' strides: not repeatable
    repeatable = all(t.stride(-1) == 1 for t in (q, k, v, out, do))
    q, k, v, out, do = (_lastdim_contiguous(t) for t in (q, k, v, out, do))
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    if min(B, H, nq, nk, D) == 0:
        return (dq.zero_(), dk.zero_(), dv.zero_()), None
    steps = _steps(node, q, k, v, out, lse, do, scale, plan, config, residue_mode)
    stats = DQ_STATS and not any(_one_launch(step.setup, step.res, B, H, k.shape[1]) for step in steps)
    if stats:  # every step's dQ launch computes its rows' statistics (``_separate_sites``)
        delta, lse2 = _stats(lse)
        pre = None
    else:
        delta, lse2, pre = _preprocess(out, do, lse, dlse, steps[0].setup.dp)
    t = _Tensors(q, k, v, do, lse2, delta, dq, dk, dv, steps[0].setup.dummy, steps[0].setup.dummy,
                 out, lse, lse if dlse is None else dlse)
    done = []
    for step in steps:
        if step.gather is None:
            sites = _launch(step.setup, step.res, t, scale, step.accum, step.accum, step.modes,
                            stats, dlse is not None)
            done.append((step.setup, sites))
            continue
        repeatable = False  # a summary part gathers keys and adds gradients: the full path each time
        ks, vs = summary.gather(k, v, step.gather)
        dks, dvs = torch.empty_like(ks), torch.empty_like(vs)
        _launch(step.setup, None, t._replace(k=ks, v=vs, dk=dks, dv=dvs), scale, False, step.accum,
                None, stats, dlse is not None)
        if not step.accum:  # no rest stored them
            dk.zero_()
            dv.zero_()
        dk.index_add_(2, step.gather, dks)
        dv.index_add_(2, step.gather, dvs)
    return (dq, dk, dv), _Call(node, pre, tuple(done)) if repeatable else None


def _steps(node: ir.Node, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
           lse: torch.Tensor, do: torch.Tensor, scale: float, plan: Plan | None,
           config: gen.BackwardConfig | None, residue_mode: str | None) -> tuple[_Step, ...]:
    """The set-ups a call runs, in order: the plan's, the summary gather's, or the pattern's
    (with its residue parts), at the tuned or rule-based config."""
    _, H, nq, D = q.shape
    nk = k.shape[2]
    dev = str(q.device)
    if plan is not None:
        return (_Step(_setup(node, H, nq, nk, D, q.dtype, dev, config, plan)),)
    summ = summary.choose(node, nq, nk) if config is None else None
    if summ is not None:
        return _summary_steps(summ, H, nq, D, q.dtype, dev)
    if config is None:
        config = autotune.backward_config(node, (q, k, v, out, lse, do), scale,
                                          dense_config(node, nq, nk, H, D, q.dtype, dev))
    return _planned(_setups(node, H, nq, nk, D, q.dtype, dev, config, residue_mode or residue.default_mode()),
                    H, k.shape[1])


def _call_key(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
              do: torch.Tensor, dlse: torch.Tensor | None, node: ir.Node, scale: float) -> tuple[Any, ...]:
    """Everything a call's launches follow from: the pattern (by identity: hashing a large node
    costs microseconds), shapes, dtype, device, strides and the modes read on every call. The
    gradients' layouts follow from the inputs' (``empty_like``)."""
    return (id(node), q.shape, k.shape, q.dtype, q.device, scale, summary.mode(), residue.default_mode(),
            autotune.enabled(), _FUSED, DQ_STATS, None if dlse is None else dlse.stride(),
            *[t.stride() for t in (q, k, v, out, lse, do)])


@dataclass(frozen=True)
class _Call:
    """A call's work, resolved once for calls of its key: allocate, preprocess (unless the dQ
    launches compute the row statistics), then each set-up's prepared launches and the sums of
    its split tiles (``_run_sites``)."""

    node: ir.Node  # held, so that the id in the key is not reused while the entry lives
    pre: Prepared | None  # None: the dQ launches compute the statistics
    steps: tuple[tuple[_Setup, tuple[Prepared, ...]], ...]

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                 lse: torch.Tensor, do: torch.Tensor, dlse: torch.Tensor | None) -> Grads:
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        delta, lse2 = _stats(lse)
        g = lse if dlse is None else dlse
        if self.pre is not None:
            self.pre((out, do, lse, g, delta, lse2))
        dummy = self.steps[0][0].dummy
        t = _Tensors(q, k, v, do, lse2, delta, dq, dk, dv, dummy, dummy, out, lse, g)
        for setup, sites in self.steps:
            _run_sites(setup, sites, t)
        return dq, dk, dv


_CALLS: dict[tuple[Any, ...], _Call] = {}  # by ``_call_key``, at most ``MAX_SITES``


@functools.lru_cache(maxsize=256)
def dense_config(node: ir.Node, nq: int, nk: int, H: int, D: int, dtype: torch.dtype,
                 device: str = "cuda") -> gen.BackwardConfig | None:
    """With 16-bit inputs, ``D <= 128`` and Hopper's shared memory: ``codegen.backward.WIDE_STEPS``
    (64-wide steps) for every pattern, unless a candidate that the plan's tile counts predict
    clearly faster replaces it (``patternc.runtime.tiles``: narrow key blocks for ``fixed``) or
    its rows are short and masked (``tiles.backward_rows``: 32-wide steps). None for the head-dim
    rule (``codegen.backward.default_config``), on other inputs and GPUs too. The backward lowers
    its own plan at these blocks, whatever the forward's were (it reads only ``out`` and ``lse``).
    (The name is historical: until session 7 only dense patterns had a config of their own.)"""
    if interpreting() or dtype == torch.float32 or D > 128 or nq < 128 or nk < 128 \
            or not large_smem(device):
        return None
    from patternc.runtime import tiles

    node_c = ir.concretize(node, nk)
    base = dataclasses.astuple(gen.WIDE_STEPS)[:8]
    best = tiles.backward_rows(node_c, nq, nk, H, D, tiles.choose(node_c, nq, nk, H, D, base, True))
    rule = dataclasses.astuple(gen.default_config(D, False))[:8]
    return None if best == rule else gen.BackwardConfig(*best)


@dataclass(frozen=True)
class _Step:
    """One set-up's launches: ``res`` its residue mapping ``(r, u0, off)``, ``gather`` its keys by
    physical index (summary part); ``accum``: its gradients add to those of the steps before."""

    setup: _Setup
    res: tuple[int, int, int] | None = None
    gather: torch.Tensor | None = None
    accum: bool = False
    modes: tuple[int, ...] | None = None  # per head group (``runtime.writes``); None: all, by ``accum``


def _whole(cfg: gen.BackwardConfig) -> gen.BackwardConfig:
    # never split the tiles of an adding step: the split buffers would overwrite, not add to, dQ / dK / dV
    return dataclasses.replace(cfg, chunk=1 << 30)


@functools.lru_cache(maxsize=128)
def _summary_steps(dec: summary.Summary, H: int, nq: int, D: int, dtype: torch.dtype,
                   device: str) -> tuple[_Step, ...]:
    """The summary gather (``patternc.runtime.summary``): the rest on the physical keys, then the
    summary part on the compact keys, each with the tiles it would get as a pattern of its own."""
    rest = _cached_setup(dec.rest, H, nq, dec.nk, D, dtype, device,
                         dense_config(dec.rest, nq, dec.nk, H, D, dtype, device))
    cfg = dense_config(dec.single, nq, dec.nks, H, D, dtype, device) or gen.default_config(D, interpreting())
    setup = _cached_setup(dec.steps, H, nq, dec.nks, D, dtype, device, cfg)
    steps = _without_empty_rest([_Step(rest), _Step(setup, gather=dec.index(device), accum=True)])
    if steps[-1].accum:  # dQ adds to the rest's: whole query tiles. dK / dV go to fresh compact
        # buffers, and their tiles (summary keys, seen by every later query) stay split
        whole_q = schedule(setup.plan.forward, setup.cfg.bm2, setup.plan.block_q, nq, 1 << 30)
        steps = (steps[0], dataclasses.replace(steps[1], setup=dataclasses.replace(setup, sq=whole_q)))
    return steps


def _without_empty_rest(steps: list[_Step]) -> tuple[_Step, ...]:
    """``steps`` (a rest, then adding steps) less a rest without any block: the first adding step
    then stores instead (its kernels write every row and key). Saves passes that write zeros to
    dQ, dK, dV and read them back."""
    plan = steps[0].setup.plan
    if len(steps) > 1 and not int(plan.forward.num.sum() + plan.forward.full_num.sum()):
        steps = [dataclasses.replace(steps[1], accum=False), *steps[2:]]
    return tuple(steps)


@functools.lru_cache(maxsize=128)
def _setups(node: ir.Node, H: int, nq: int, nk: int, D: int, dtype: torch.dtype, device: str,
            config: gen.BackwardConfig | None, mode: str) -> tuple[_Step, ...]:
    """The plain set-up of the pattern, or of its rest followed by the residue parts."""
    node_c = ir.concretize(node, nk)
    cfg = config or gen.default_config(D, interpreting())
    dec = residue.decompose(node_c, nq, nk, H, cfg.block_q, cfg.block_k, mode)
    if dec is None:
        return (_Step(_cached_setup(node, H, nq, nk, D, dtype, device, config)),)
    out = [_Step(_cached_setup(dec.rest, H, nq, nk, D, dtype, device, config))]
    for part in dec.parts:
        out.append(_Step(_cached_setup(part.node, H, part.nq, part.nk, D, dtype, device, _whole(cfg)),
                         (part.r, part.u0, part.off), accum=True))
    return tuple(out)  # every step; ``_planned`` decides who writes which heads


def _planned(steps: tuple[_Step, ...], H: int, HKV: int) -> tuple[_Step, ...]:
    """``steps`` (a rest, then adding parts) with each head group written once and added to
    after that (``runtime.writes``): per step the groups it skips, stores or adds. dK / dV are
    per KV head, so groups whose query heads share a KV head (grouped-query attention across
    head groups) are planned together. Steps over different head groupings, or more than 31
    groups (the kernels' masks), keep the general rule (``_without_empty_rest``)."""
    G = steps[0].setup.groups
    if len(steps) == 1 or G > 31 or any(step.setup.groups != G for step in steps):
        return _without_empty_rest(list(steps))
    unit = _kv_units(G, H, HKV)
    units = sorted(set(unit))
    active = [[any(step.setup.active[g] for g in range(G) if unit[g] == u) for u in units] for step in steps]
    return tuple(dataclasses.replace(steps[i], accum=writes.ADD in modes,
                                     modes=tuple(modes[units.index(unit[g])] for g in range(G)))
                 for i, modes in writes.plan(active))


def _kv_units(G: int, H: int, HKV: int) -> list[int]:
    """Per head group, the smallest group it shares KV heads with, directly or through others
    (union-find): those groups' dK / dV are written together.

        >>> _kv_units(4, 8, 8), _kv_units(4, 8, 2), _kv_units(4, 4, 2)
        ([0, 1, 2, 3], [0, 0, 2, 2], [0, 0, 2, 2])
    """
    parent = list(range(G))

    def find(g: int) -> int:
        while parent[g] != g:
            g = parent[g]
        return g

    R = H // HKV
    for kv in range(HKV):
        roots = {find(h * G // H) for h in range(kv * R, kv * R + R)}
        for r in roots:
            parent[r] = min(roots)
    return [find(g) for g in range(G)]


class _Tensors(NamedTuple):
    """One launch's tensors: inputs, the row statistics, gradients, split buffers, and what the
    statistics come from (the forward's output and LSE, the LSE's gradient or the LSE again)."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    do: torch.Tensor
    lse2: torch.Tensor
    delta: torch.Tensor
    dq: torch.Tensor
    dk: torch.Tensor
    dv: torch.Tensor
    kbuf: torch.Tensor
    qbuf: torch.Tensor
    out: torch.Tensor
    lse: torch.Tensor
    dlse: torch.Tensor


_SLOTS = _Tensors._make(Slot(i) for i in range(len(_Tensors._fields)))  # where each call's tensors go


def _launch(st: _Setup, res: tuple[int, int, int] | None, t: _Tensors, scale: float, accum_kv: bool,
            accum_q: bool, modes: tuple[int, ...] | None, stats: bool,
            has_dlse: bool) -> tuple[Prepared, ...]:
    """The dK/dV and dQ kernels of one set-up (residue-gathered with ``res = (r, u0, off)``) on
    tensors ``t``; ``accum_kv`` / ``accum_q``: add to the stored dK, dV / dQ instead of
    overwriting them, or, with ``modes``, per head group what ``runtime.writes`` planned (skip,
    store or add). ``stats``: the dQ launch computes the row statistics (no preprocess ran).
    Returns the prepared launches it ran (for :class:`_Call`)."""
    B, H = t.q.shape[:2]
    HKV = t.k.shape[1]
    if modes is None:
        skip, add = 0, -1  # every group written; ``accum_*`` say whether the stores add
    else:
        skip, add = writes.mask(modes, writes.SKIP), writes.mask(modes, writes.ADD)
        accum_kv = accum_q = add != 0
    n_k = st.sk.items.shape[0] * B * HKV
    fused = _one_launch(st, res, B, H, HKV)
    # everything but the tensors follows from this key: build the launches once, then fill in tensors
    key = (res, scale, accum_kv, accum_q, skip, add, fused, t.q.shape, t.k.shape,
           *[x.stride() for x in (t.q, t.k, t.v, t.do, t.dq, t.dk, t.dv)],
           *([has_dlse, *[x.stride() for x in (t.out, t.lse, t.dlse)]] if stats else []))
    sites = cached_site(st.sites, key, lambda: (
        (_fused_site(st, res, t, n_k, scale, accum_kv, accum_q, skip, add),) if fused
        else _separate_sites(st, res, t, scale, accum_kv, accum_q, skip, add, stats, has_dlse)))
    _run_sites(st, sites, t)
    return sites


def _one_launch(st: _Setup, res: tuple[int, int, int] | None, B: int, H: int, HKV: int) -> bool:
    """Whether a set-up runs its dK/dV and dQ programs in one launch (``_fused``)."""
    return _fused(st.sk.items.shape[0] * B * HKV, st.sq.items.shape[0] * B * H, res[0] if res else 1)


def _run_sites(st: _Setup, sites: tuple[Prepared, ...], t: _Tensors) -> None:
    """Launch a set-up's prepared ``sites`` on tensors ``t`` (split buffers filled in here), then
    add up the split tiles."""
    q, dq, dk, dv = t.q, t.dq, t.dk, t.dv
    B, H, _, D = q.shape
    HKV = t.k.shape[1]
    cfg, sk, sq = st.cfg, st.sk, st.sq
    # both split buffers in one zeroed allocation (one fill kernel instead of two)
    nkb, nqb = B * HKV * sk.n_slots * 2 * cfg.bn1 * st.dp, B * H * sq.n_slots * cfg.bm2 * st.dp
    buf = torch.zeros(nkb + nqb, device=q.device) if nkb + nqb else st.dummy
    kbuf = buf[:nkb].view(B * HKV, sk.n_slots, 2, cfg.bn1, st.dp) if sk.n_slots else st.dummy
    qbuf = buf[nkb:].view(B * H, sq.n_slots, cfg.bm2, st.dp) if sq.n_slots else st.dummy
    t = t._replace(kbuf=kbuf, qbuf=qbuf)
    for site in sites:
        site(t)
    # split tiles: their float32 sums into the gradients. ``sel`` is always the prefix 0..m-1 of the
    # buffer's rows (only the last split tile can run past the end), so a slice replaces the gather,
    # and one cast-and-copy makes the (dK, dV) pair contiguous: 3 kernels instead of 6 (dQ: 2 of 3)
    if sk.n_slots:
        part = kbuf.view(B, HKV, sk.n_slots, 2, cfg.bn1, st.dp)[..., :D].permute(3, 0, 1, 2, 4, 5)
        # (reshape: a view after a dtype change; a copy for float32, where .to returns the view itself)
        part = part.to(dk.dtype, memory_format=torch.contiguous_format)
        part = part.reshape(2, B, HKV, sk.n_slots * cfg.bn1, D)[:, :, :, : sk.sel.shape[0]]
        dk[:, :, sk.rows] = part[0]
        dv[:, :, sk.rows] = part[1].to(dv.dtype)
    if sq.n_slots:
        part = qbuf.view(B, H, sq.n_slots * cfg.bm2, st.dp)[:, :, : sq.sel.shape[0], :D]
        dq[:, :, sq.rows] = part.to(dq.dtype)


FUSE_MAX_PROGRAMS = 2048
"""The one-launch ``bwd_kernel`` runs when the smaller kind (dK/dV or dQ) has at most this many
programs (times residue classes): a few waves, whose tails a second launch would leave idle.
Larger grids run ``dkdv_kernel`` and ``dq_kernel``, which are faster there (one body per kernel).
H100, bf16, through autograd, ms (``benchmarks/results/fused_ab_h100_2026-11-22_s8_a6e85f5.json``),
this rule / always one launch / always two: 64k D=64 ``block_local`` 1.047 / 1.217 / 1.042,
``longformer`` 1.943 / 2.129 / 1.990, ``sparse_transformer_fixed`` 3.66 / 3.68 / 4.10 (its
summary step is a small grid); 4k ``block_local`` D=64 0.349 / 0.347 / 0.388, D=128 0.289 /
0.383 / 0.406 (host-bound, noisy)."""
_FUSED: bool | None = None  # None: by FUSE_MAX_PROGRAMS; True / False forces it (tests, A/B timings)


def _even(plan: Plan, res: tuple[int, int, int] | None, nq: int, nk: int) -> tuple[bool, bool]:
    """Whether every query row / key of the launch's blocks exists (the kernels' ``EVEN_Q`` /
    ``EVEN_K``: unmasked loads): whole blocks, and for a residue launch whole classes
    (``residue.whole_classes`` of the physical lengths ``nq``, ``nk``)."""
    rows, keys = residue.whole_classes(nq, nk, res[0]) if res else (True, True)
    return rows and plan.nq % plan.block_q == 0, keys and plan.nk % plan.block_k == 0


def _fused(n_k: int, n_q: int, r: int) -> bool:
    return _FUSED if _FUSED is not None else min(n_k, n_q) * r <= FUSE_MAX_PROGRAMS


def _fused_site(st: _Setup, res: tuple[int, int, int] | None, t: _Tensors, n_k: int, scale: float,
                accum_kv: bool, accum_q: bool, skip: int, add: int) -> Prepared:
    """dK/dV's ``n_k`` programs, then dQ's, in one launch of ``bwd_kernel`` (``t``: the layout;
    ``skip`` / ``add``: the group masks of ``runtime.writes``)."""
    B, H, nq, D = t.q.shape
    HKV, nk = t.k.shape[1], t.k.shape[2]
    cfg, plan, sk, sq = st.cfg, st.plan, st.sk, st.sq
    fwd, bwd = plan.forward, plan.backward
    r, u0, off = res or (1, 0, 0)
    even = _even(plan, res, nq, nk)
    return Prepared(
        st.module.bwd_kernel, (n_k + sq.items.shape[0] * B * H, r), (
        *_SLOTS[:11],  # the tensors the one-launch kernel takes: not those of the statistics
        bwd.num, _nonempty(bwd.idx), bwd.full_num, _nonempty(bwd.full_idx), sk.items,
        fwd.num, _nonempty(fwd.idx), fwd.full_num, _nonempty(fwd.full_idx), sq.items, *st.tables,
        scale, scale * gen.LOG2E, *t.q.stride()[:3], *t.k.stride()[:3], *t.v.stride()[:3], *t.do.stride()[:3],
        *t.dq.stride()[:3], *t.dk.stride()[:3], *t.dv.stride()[:3],
        plan.nq, plan.nk, H, HKV, st.groups, plan.groups,
        plan.num_k_blocks, bwd.idx.shape[-1], bwd.full_idx.shape[-1], sk.n_slots, sk.items.shape[0],
        B * HKV, n_k, plan.num_q_blocks, fwd.idx.shape[-1], fwd.full_idx.shape[-1], sq.n_slots,
        sq.items.shape[0], B * H, r, u0, off, nq, nk, skip, add), dict(
        BLOCK_Q=plan.block_q, BLOCK_K=plan.block_k, BM1=cfg.bm1, BN1=cfg.bn1, BM2=cfg.bm2, BN2=cfg.bn2,
        D=D, DP=st.dp, PREC=st.prec, UPCAST=st.upcast,
        EVEN_Q=even[0], EVEN_K=even[1], RES=res is not None, ACCUM_KV=accum_kv, ACCUM_Q=accum_q,
        K_HEADS_FAST=sk.n_slots > 0, Q_HEADS_FAST=sq.n_slots > 0,
        K_PARTIAL=bwd.has_partial, K_FULL=bwd.has_full, Q_PARTIAL=fwd.has_partial, Q_FULL=fwd.has_full,
        num_warps=cfg.fused_launch[0], num_stages=cfg.fused_launch[1]))


def _separate_sites(st: _Setup, res: tuple[int, int, int] | None, t: _Tensors, scale: float,
                    accum_kv: bool, accum_q: bool, skip: int, add: int, stats: bool,
                    has_dlse: bool) -> tuple[Prepared, Prepared]:
    """``dkdv_kernel``, then ``dq_kernel`` (``t``: the layout); with ``stats`` the other way round,
    ``dq_kernel`` computing the row statistics that ``dkdv_kernel`` then reads."""
    s = _SLOTS
    B, H, nq, D = t.q.shape
    HKV, nk = t.k.shape[1], t.k.shape[2]
    cfg, plan, sk, sq = st.cfg, st.plan, st.sk, st.sq
    fwd, bwd = plan.forward, plan.backward
    r, u0, off = res or (1, 0, 0)
    common = (scale, scale * gen.LOG2E, *t.q.stride()[:3], *t.k.stride()[:3], *t.v.stride()[:3],
              *t.do.stride()[:3])
    even = _even(plan, res, nq, nk)
    dkdv = Prepared(
        st.module.dkdv_kernel, _grid(B * HKV, sk, r), (
        s.q, s.k, s.v, s.do, s.lse2, s.delta, s.dk, s.dv, s.kbuf, bwd.num, _nonempty(bwd.idx), bwd.full_num,
        _nonempty(bwd.full_idx), sk.items, *st.tables,
        *common, *t.dk.stride()[:3], *t.dv.stride()[:3],
        plan.nq, plan.nk, H, HKV, st.groups, plan.groups, plan.num_k_blocks, bwd.idx.shape[-1],
        bwd.full_idx.shape[-1], sk.n_slots, r, u0, off, nq, nk, skip, add), dict(
        BLOCK_Q=plan.block_q, BLOCK_K=plan.block_k, BM=cfg.bm1, BN=cfg.bn1, D=D, DP=st.dp, PREC=st.prec,
        UPCAST=st.upcast, EVEN_Q=even[0], HEADS_FAST=sk.n_slots > 0,
        HAS_PARTIAL=bwd.has_partial, HAS_FULL=bwd.has_full,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, RES=res is not None, ACCUM=accum_kv))
    dq = Prepared(
        st.module.dq_kernel, _grid(B * H, sq, r), (
        s.q, s.k, s.v, s.do, s.lse2, s.delta, s.dq, s.qbuf, fwd.num, _nonempty(fwd.idx), fwd.full_num,
        _nonempty(fwd.full_idx), sq.items, *st.tables,
        *common, *t.dq.stride()[:3],
        plan.nq, plan.nk, H, HKV, st.groups, plan.groups, plan.num_q_blocks, fwd.idx.shape[-1],
        fwd.full_idx.shape[-1], sq.n_slots, r, u0, off, nq, nk, skip, add,
        s.out, s.lse, s.dlse, *t.out.stride()[:3], *t.lse.stride(), *t.dlse.stride()), dict(
        BLOCK_Q=plan.block_q, BLOCK_K=plan.block_k, BM=cfg.bm2, BN=cfg.bn2, D=D, DP=st.dp,
        EVEN_K=even[1], PREC=st.prec, UPCAST=st.upcast,
        HEADS_FAST=sq.n_slots > 0, HAS_PARTIAL=fwd.has_partial, HAS_FULL=fwd.has_full,
        num_warps=cfg.dq_launch[0], num_stages=cfg.dq_launch[1], RES=res is not None, ACCUM=accum_q,
        STATS=stats, HAS_DLSE=stats and has_dlse))
    return (dq, dkdv) if stats else (dkdv, dq)


DQ_STATS = True
"""Where no step of a call runs one launch for both kinds of program, no preprocess runs: each
dQ launch computes its rows' statistics from O, dO and the LSE and stores them, and its dK/dV
launch reads them after it (``_backward``). Saves a pass over O and dO (H100, 64k, D=64: the
preprocess took 97 us of a 0.87 ms ``sparse_transformer_stride`` backward)."""


def _grid(heads: int, sched: Schedule, r: int) -> tuple[int, int, int]:
    """Heads fastest when tiles are split (so every head's long chunks start first), else work
    items fastest (programs running together share one head's data in L2)."""
    items = sched.items.shape[0]
    return (heads, items, r) if sched.n_slots > 0 else (items, heads, r)


_PRE_SITES: dict[tuple[Any, ...], Prepared] = {}  # the preprocess launch per call layout


def _preprocess(out: torch.Tensor, do: torch.Tensor, lse: torch.Tensor, dlse: torch.Tensor | None,
                dp: int) -> tuple[torch.Tensor, torch.Tensor, Prepared]:
    """``delta = rowsum(dO * O) - dLSE`` and the base-2 LSE (``+inf`` on rows without keys), and
    the prepared launch that computed them."""
    delta, lse2 = _stats(lse)
    g = lse if dlse is None else dlse
    t = (out, do, lse, g, delta, lse2)
    key = (out.shape, dp, dlse is None, *[x.stride() for x in t[:4]])
    site = cached_site(_PRE_SITES, key, lambda: _preprocess_site(t, dp, dlse is not None))
    site(t)
    return delta, lse2, site


def _stats(lse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh ``delta`` and ``lse2``: contiguous float32, shaped like ``lse`` (``[B, H, nq]``)."""
    # (``empty_like``: about half the host time of ``torch.empty`` with a shape and keywords)
    delta = torch.empty_like(lse, dtype=torch.float32, memory_format=torch.contiguous_format)
    return delta, torch.empty_like(delta)


def _preprocess_site(t: tuple[torch.Tensor, ...], dp: int, has_dlse: bool) -> Prepared:
    """The preprocess launch for tensors ``(out, do, lse, g, delta, lse2)`` laid out as ``t``."""
    out, do, lse, g = t[:4]
    B, H, nq, D = out.shape
    bm = 16 if interpreting() else 64
    return Prepared(
        gen.preprocess_kernel, (-(-nq // bm), B * H),  # not triton.cdiv: a ConstexprFunction
        (*[Slot(i) for i in range(len(t))], *out.stride()[:3], *do.stride()[:3], *lse.stride(),
         *g.stride(), nq, H), dict(BM=bm, D=D, DP=dp, HAS_DLSE=has_dlse))
