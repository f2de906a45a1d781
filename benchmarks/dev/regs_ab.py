"""Registers and occupancy of the generated kernels (session 14, issue #6): per pattern, the
registers, spills and shared memory of each forward / backward kernel it launches (Triton's
``CompiledKernel``), so how many programs an SM holds; then the forward and backward timed with
Triton's ``maxnreg`` launch option capping registers per thread (more resident programs where
registers bound them), and with the forward template's key loops as ``tl.range(...,
warp_specialize=True)`` (``ws``, where this Triton supports it). Rounds alternate in one process;
every variant's output is compared with the default's.

    RA_N=65536 RA_D=64 RA_REGS=128,96 python benchmarks/dev/regs_ab.py    # $OUT/regs_ab.json

``RA_PATTERNS``: ';'-separated stdlib ``file/name`` or ``.sap`` text; ``RA_REGS``: ','-separated
caps (the default, no cap, always runs); ``RA_TEMPLATES``: ``base,ws``; ``RA_BWD=0`` skips the
backward; ``RA_ROUNDS``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms, node_of

import patternc.codegen.forward as gf
from patternc.runtime import launch, reset
from patternc.runtime.launch import compiled_kernels, name_of

rf = importlib.import_module("patternc.runtime.forward")
rb = importlib.import_module("patternc.runtime.backward")
N = int(os.environ.get("RA_N", "65536"))
D = int(os.environ.get("RA_D", "64"))
ROUNDS = int(os.environ.get("RA_ROUNDS", "2"))
PATTERNS = os.environ.get("RA_PATTERNS", "block_local/block_local_causal;block_local/block_local;"
                          "sparse_transformer/sparse_transformer_stride;"
                          "sparse_transformer/sparse_transformer_strided;band(256);longformer/longformer").split(";")
REGS = [None] + [int(x) for x in os.environ.get("RA_REGS", "128,96").split(",") if x]
TEMPLATES = os.environ.get("RA_TEMPLATES", "base,ws").split(",")
BWD = os.environ.get("RA_BWD", "1") != "0"
FWD_KERNELS = ("attn_fwd",)
BWD_KERNELS = ("dkdv_kernel", "dq_kernel", "bwd_kernel")
BASE_KERNEL, BASE_VERSION = gf._KERNEL, gf.VERSION
CAP: list[int | None] = [None]


class Capped(launch.Prepared):
    """A prepared launch that adds ``maxnreg`` for the kernels under test while ``CAP`` is set."""

    def __init__(self, fn: Any, grid: tuple[int, ...], args: Any, kwargs: dict[str, Any]) -> None:
        if CAP[0] is not None and name_of(fn) in FWD_KERNELS + BWD_KERNELS:
            kwargs = {**kwargs, "maxnreg": CAP[0]}
        super().__init__(fn, grid, args, kwargs)


rf.Prepared = Capped  # type: ignore[attr-defined]
rb.Prepared = Capped  # type: ignore[attr-defined]

# the loop-per-kind branch's loops (rows of both kinds run one loop since session 16: ONE_LOOP)
LOOPS = ("    for t in range(tl.load(WORK + w * 8 + 1), tl.load(WORK + w * 8 + 2)):",
         "    for t in range(tl.load(WORK + w * 8 + 3), tl.load(WORK + w * 8 + 4)):")


def warp_specialized(text: str) -> str:
    """The forward template with both key loops warp-specialized."""
    for loop in LOOPS:
        assert loop in text, loop
        ws = loop.replace("range(", "tl.range(").replace("):", ", warp_specialize=True):")
        text = text.replace(loop, ws)
    return text


SOURCES = {"base": BASE_KERNEL, "ws": warp_specialized(BASE_KERNEL)}


def use(template: str, cap: int | None) -> None:
    """Forward template and register cap for the next calls (every cache that holds launches cleared)."""
    gf._KERNEL = SOURCES[template]
    gf.VERSION = BASE_VERSION if template == "base" else f"{BASE_VERSION}-{template}"  # type: ignore[assignment]
    CAP[0] = cap
    reset()  # set-ups, prepared launches and compiled launchers: the next calls show this variant's


def kernel_stats(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Registers, spills, shared memory and warps of every compiled kernel named in ``names``."""
    seen = []
    for name, k in compiled_kernels():
        if name not in names:
            continue
        meta = k.metadata
        stat = {"kernel": name, "regs": getattr(k, "n_regs", None), "spills": getattr(k, "n_spills", None),
                "shared": meta.shared, "warps": meta.num_warps, "stages": meta.num_stages,
                "maxnreg": getattr(meta, "maxnreg", None)}
        if stat not in seen:
            seen.append(stat)
    return seen


def row(text: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor) -> dict[str, Any]:
    node = node_of(text)
    out: dict[str, Any] = {"pattern": text, "n": N, "d": D, "fwd": {}, "bwd": {}, "stats": {}}
    use("base", None)
    ref, lse = rf.forward(q, k, v, node)
    gref = rb.backward(q, k, v, ref, lse, do, node) if BWD else None
    variants = [(t, c) for t in TEMPLATES for c in REGS]
    for _ in range(ROUNDS):
        for template, cap in variants:
            key = f"{template} {cap}"
            use(template, cap)
            try:
                o, _ = rf.forward(q, k, v, node)
                err = float((o.float() - ref.float()).abs().max())
                out["fwd"].setdefault(key, []).append((median_ms(lambda: rf.forward(q, k, v, node)), err))
            except Exception as e:  # a sweep records failures (an unsupported option, a compile error)
                out["fwd"].setdefault(key, []).append((None, repr(e)[:200]))
            if BWD and template == "base":
                try:
                    g = rb.backward(q, k, v, ref, lse, do, node)
                    assert gref is not None
                    err = max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                              for a, b in zip(g, gref))
                    out["bwd"].setdefault(key, []).append(
                        (median_ms(lambda: rb.backward(q, k, v, ref, lse, do, node)), err))
                except Exception as e:
                    out["bwd"].setdefault(key, []).append((None, repr(e)[:200]))
            out["stats"][key] = kernel_stats(FWD_KERNELS + BWD_KERNELS)
    use("base", None)
    return out


def show(r: dict[str, Any]) -> str:
    lines = [f"{r['pattern']} (N={r['n']}, D={r['d']})"]
    for part in ("fwd", "bwd"):
        for key, vals in r[part].items():
            ms = " ".join("fail" if m is None else f"{m:.4f}" for m, _ in vals)
            lines.append(f"  {part} {key:10s} {ms}   err {vals[-1][1]}")
    for key, stats in r["stats"].items():
        lines.append(f"  {key:10s} " + "; ".join(
            f"{s['kernel']} r{s['regs']} sp{s['spills']} sm{s['shared']} w{s['warps']} st{s['stages']}"
            for s in stats))
    return "\n".join(lines)


def main() -> None:
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    rows: list[dict[str, Any]] = []
    for text in PATTERNS:
        r = row(text, q, k, v, do)
        print(show(r), flush=True)
        add_row(rows, r, "regs_ab.json", show)


if __name__ == "__main__":
    main()
