"""Opt-in autotuning of the kernels' tile configs, cached on disk per GPU.

Off by default: the configs then come from fixed rules (``forward.default_config`` /
``dense_config``, ``codegen.backward.default_config``), measured on an H100. With
``PATTERNC_AUTOTUNE=1`` (or :func:`enable`), the first forward (backward) call of a pattern
structure, length bucket, head dim, dtype and GPU times a short list of candidate configs on the
call's own inputs (``triton.testing.do_bench`` medians; candidates that do not compile are
skipped), keeps the fastest and stores it in ``$PATTERNC_CACHE_DIR/autotune.json``; later calls,
in this process or another, read it from there. :func:`tune_forward` / :func:`tune_backward`
tune explicitly (for example once before training).

The key (:func:`key`): the pattern's canonical ``.sap`` text, ``nq`` and ``nk`` rounded up to
powers of two, query and KV heads, head dim, dtype and the GPU's name. Candidates are small, safe
lists (every one is a config the kernels run correctly; only speed differs); the rule-based config
is always among them, so tuning never picks something slower than the default as measured.
The file is rewritten atomically; two processes tuning at once may drop each other's new entries
(they are re-tuned on the next miss), never corrupt the file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from patternc import ir
from patternc.codegen.backward import BackwardConfig
from patternc.runtime.cache import cache_dir, env_flag, write_atomic
from patternc.runtime.forward import ForwardConfig

_LOCK = threading.Lock()
_TABLE: dict[str, dict[str, Any]] | None = None
_ENABLED: bool | None = None  # None: follow $PATTERNC_AUTOTUNE

# (block_q, block_k, warps, stages); the first of each list is a rule-based default. A candidate
# that does not fit the GPU's shared memory fails to compile and is skipped.
# Narrow key blocks (16, 32) pay off where visited blocks hold few of the pattern's keys (``fixed``:
# 2.8x forward at 64k on an H100, benchmarks/dev/tiles_fit_h100.json); ``patternc.runtime.tiles``
# picks them without tuning where the plan's counts predict it.
FORWARD_CANDIDATES: dict[int, tuple[tuple[int, ...], ...]] = {
    64: ((64, 64, 4, 3), (128, 128, 4, 3), (128, 64, 4, 4), (64, 64, 4, 4), (128, 64, 4, 3), (64, 32, 4, 3),
         (64, 16, 4, 3)),
    128: ((64, 64, 4, 2), (128, 128, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3), (128, 64, 8, 2), (64, 32, 4, 2),
          (64, 16, 4, 2)),
}
# (block_q, block_k, bm1, bn1, bm2, bn2, warps, stages)
BACKWARD_CANDIDATES: dict[int, tuple[tuple[int, ...], ...]] = {
    64: ((64, 64, 64, 64, 64, 64, 4, 2), (64, 64, 64, 64, 64, 64, 4, 3), (128, 128, 64, 128, 128, 64, 8, 2),
         (64, 32, 64, 32, 64, 32, 4, 2), (64, 16, 64, 16, 64, 16, 4, 2), (128, 16, 64, 16, 128, 16, 4, 2)),
    128: ((64, 64, 32, 64, 64, 32, 4, 2), (64, 64, 64, 64, 64, 64, 4, 2), (128, 128, 64, 128, 128, 64, 8, 2),
          (64, 32, 64, 32, 64, 32, 4, 2), (64, 32, 32, 32, 64, 32, 4, 2), (64, 16, 64, 16, 64, 16, 4, 2)),
}


def enabled() -> bool:
    """Whether calls without an explicit config tune on a cache miss."""
    if _ENABLED is not None:
        return _ENABLED
    return env_flag("PATTERNC_AUTOTUNE", False)


def enable(on: bool = True) -> None:
    """Turn tuning on cache misses on or off for this process (overrides ``$PATTERNC_AUTOTUNE``)."""
    global _ENABLED
    _ENABLED = on


def _bucket(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def key(kind: str, node: ir.Node, q: torch.Tensor, k: torch.Tensor) -> str:
    """The cache key of a call: kind, pattern text, length buckets, heads, head dim, dtype, GPU."""
    _, H, nq, D = q.shape
    gpu = torch.cuda.get_device_name(q.device) if q.is_cuda else q.device.type
    return (f"{kind}|{node.sap()}|nq{_bucket(nq)}|nk{_bucket(k.shape[2])}|H{H}/{k.shape[1]}|D{D}"
            f"|{str(q.dtype).removeprefix('torch.')}|{gpu}")


def path() -> str:
    return str(cache_dir() / "autotune.json")


def _table() -> dict[str, dict[str, Any]]:
    global _TABLE
    if _TABLE is None:
        try:
            with open(path()) as f:
                _TABLE = json.load(f)
        except (OSError, ValueError):
            _TABLE = {}
    return _TABLE


def _store(k: str, entry: dict[str, Any]) -> None:
    global _TABLE
    with _LOCK:
        table = {**_table(), k: entry}
        try:
            with open(path()) as f:  # keep what other processes added meanwhile
                table = {**json.load(f), k: entry}
        except (OSError, ValueError):
            pass
        write_atomic(cache_dir() / "autotune.json", json.dumps(table, indent=1, sort_keys=True))
        _TABLE = table


def _candidates(table: dict[int, tuple[tuple[int, ...], ...]], head_dim: int) -> tuple[tuple[int, ...], ...]:
    fits = [d for d in sorted(table) if head_dim <= d]
    return table[fits[0]] if fits else ()


def _time(fn: Callable[[], Any]) -> float:
    import triton

    torch.cuda.synchronize()
    return float(triton.testing.do_bench(fn, warmup=5, rep=20, return_mode="median"))


def _best(run: Callable[[Any], Any], configs: Sequence[Any]) -> tuple[Any, dict[str, float]]:
    """The fastest config by measured median time; configs that raise are skipped."""
    times: dict[str, float] = {}
    best, best_t = configs[0], float("inf")
    for cfg in configs:
        try:
            run(cfg)  # compile and warm up outside the timing
            t = _time(functools.partial(run, cfg))
        except Exception:  # e.g. out of shared memory on a smaller GPU: not a candidate here
            continue
        times[repr(cfg)] = t
        if t < best_t:
            best, best_t = cfg, t
    return best, times


def forward_config(node: ir.Node, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None,
                   default: ForwardConfig) -> ForwardConfig:
    """The cached tuned forward config for this call, tuning on a miss when enabled; else ``default``."""
    if not q.is_cuda or not (enabled() or _table()):  # the common case: nothing tuned, nothing to do
        return default
    hit = _table().get(key("fwd", node, q, k))
    if hit is not None:
        return ForwardConfig(*hit["config"])
    return tune_forward(node, q, k, v, scale, default) if enabled() else default


def tune_forward(node: ir.Node, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
                 default: ForwardConfig | None = None) -> ForwardConfig:
    """Time the forward candidates (and ``default``) on these inputs, cache and return the fastest."""
    from patternc.runtime.forward import forward

    cands = [ForwardConfig(*c) for c in _candidates(FORWARD_CANDIDATES, q.shape[3])]
    if default is not None:
        cands = [default] + [c for c in cands if c != default]
    if not cands:
        raise ValueError(f"no forward candidates for head dim {q.shape[3]}")
    best, times = _best(lambda c: forward(q, k, v, node, scale, config=c), cands)
    _store(key("fwd", node, q, k), {"config": list(dataclasses.astuple(best))[:4], "times_ms": times})
    return best


def backward_config(node: ir.Node, args: tuple[torch.Tensor, ...], scale: float | None,
                    default: BackwardConfig | None) -> BackwardConfig | None:
    """The cached tuned backward config (``args = q, k, v, out, lse, do``), tuning on a miss when
    enabled; else ``default`` (None: the rule-based config)."""
    q, k = args[0], args[1]
    if not q.is_cuda or not (enabled() or _table()):
        return default
    hit = _table().get(key("bwd", node, q, k))
    if hit is not None:
        return BackwardConfig(*hit["config"])
    return tune_backward(node, args, scale, default) if enabled() else default


def tune_backward(node: ir.Node, args: tuple[torch.Tensor, ...], scale: float | None = None,
                  default: BackwardConfig | None = None) -> BackwardConfig:
    """Time the backward candidates (and ``default``) on ``args = (q, k, v, out, lse, do)``; cache
    and return the fastest."""
    from patternc.runtime.backward import backward

    q, k, v, out, lse, do = args
    cands = [BackwardConfig(*c) for c in _candidates(BACKWARD_CANDIDATES, q.shape[3])]
    if default is not None:
        cands = [default] + [c for c in cands if c != default]
    if not cands:
        raise ValueError(f"no backward candidates for head dim {q.shape[3]}")
    best, times = _best(lambda c: backward(q, k, v, out, lse, do, node, scale, config=c), cands)
    _store(key("bwd", node, q, k), {"config": list(dataclasses.astuple(best))[:8], "times_ms": times})
    return best
