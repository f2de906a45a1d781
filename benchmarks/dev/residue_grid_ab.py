"""Residue launches' grid order and key masks (session 14, issue #6): the forward's gathered
launches (``RES``) with the residue class as grid axis 2 (main: a class's work items and heads
run together, classes one after another) against the class varying fastest (``cls``: programs
running together read neighbouring classes' rows, which are adjacent in memory), and with the key
bound test dropped where every class has a whole number of key blocks (``even``), rounds
alternating in one process, outputs compared with main's.

    RG_N=65536 RG_D=64 python benchmarks/dev/residue_grid_ab.py    # $OUT/residue_grid_ab.json

``RG_PATTERNS``: ';'-separated stdlib ``file/name`` or ``.sap`` text; ``RG_VARIANTS``:
``base,cls,even,cls+even``; ``RG_ROUNDS``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms, node_of

import patternc.codegen.forward as gf
from patternc.runtime import launch

rf = importlib.import_module("patternc.runtime.forward")
N = int(os.environ.get("RG_N", "65536"))
D = int(os.environ.get("RG_D", "64"))
ROUNDS = int(os.environ.get("RG_ROUNDS", "2"))
PATTERNS = os.environ.get("RG_PATTERNS", "sparse_transformer/sparse_transformer_stride;"
                          "sparse_transformer/sparse_transformer_strided;"
                          "sparse_transformer/sparse_transformer_strided_heads;"
                          "dilated_sliding_window/dilated_sliding_window;"
                          "dilated_sliding_window/dilated_sliding_window_causal;"
                          "longformer/longformer_dilated;(window(127, 0) | strided(128)) & causal").split(";")
VARIANTS = os.environ.get("RG_VARIANTS", "base,cls,even,cls+even").split(",")
BASE_KERNEL, BASE_VERSION = gf._KERNEL, gf.VERSION
IDS = """    if HEADS_FAST:  # split heavy rows: every head's slices start in the first wave
        pid = tl.program_id(0)
        w = tl.program_id(1)
    else:  # work items vary fastest: neighbouring programs share one head's K / V blocks in L2
        w = tl.program_id(0)
        pid = tl.program_id(1)
    res_c = tl.program_id(2)
"""
CLS_IDS = """    if HEADS_FAST:  # split heavy rows: every head's slices start in the first wave
        pid = tl.program_id(0)
        w = tl.program_id(1)
        res_c = tl.program_id(2)
    elif RES:  # classes fastest, then work items: axis 0 is (work item, class)
        w = tl.program_id(0) // res_r
        res_c = tl.program_id(0) % res_r
        pid = tl.program_id(1)
    else:
        w = tl.program_id(0)
        pid = tl.program_id(1)
        res_c = tl.program_id(2)
"""
assert IDS in BASE_KERNEL
SOURCES = {"base": BASE_KERNEL, "cls": BASE_KERNEL.replace(IDS, CLS_IDS)}
MODE = ["base"]


def _name(fn: Any) -> str:
    return str(getattr(getattr(fn, "fn", None), "__name__", ""))


class Variant(launch.Prepared):
    """A prepared forward launch laid out as ``MODE[0]`` says (grid order, EVEN_N)."""

    def __init__(self, fn: Any, grid: tuple[int, ...], args: Any, kwargs: dict[str, Any]) -> None:
        if _name(fn) == "attn_fwd" and kwargs.get("RES"):
            r, nk_phys = args[-5], args[-1]
            if "cls" in MODE[0] and not kwargs["HEADS_FAST"]:
                grid = (grid[0] * grid[2], grid[1], 1)
            if "even" in MODE[0] and nk_phys % r == 0 and (nk_phys // r) % 64 == 0:
                kwargs = {**kwargs, "EVEN_N": True}
        super().__init__(fn, grid, args, kwargs)


rf.Prepared = Variant  # type: ignore[attr-defined]


def use(variant: str) -> None:
    MODE[0] = variant
    template = "cls" if "cls" in variant else "base"
    gf._KERNEL = SOURCES[template]
    gf.VERSION = BASE_VERSION if template == "base" else f"{BASE_VERSION}-{template}"  # type: ignore[assignment]
    for f in (rf.kernel_module, rf._cached_setup, rf._launches):
        f.cache_clear()


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    rows: list[dict[str, Any]] = []
    for text in PATTERNS:
        node = node_of(text)
        use("base")
        ref = rf.forward(q, k, v, node)[0]
        row: dict[str, Any] = {"pattern": text, "n": N, "d": D, "ms": {}, "err": {}}
        for _ in range(ROUNDS):
            for variant in VARIANTS:
                use(variant)
                o = rf.forward(q, k, v, node)[0]
                row["err"][variant] = float((o.float() - ref.float()).abs().max())
                row["ms"].setdefault(variant, []).append(
                    round(median_ms(lambda node=node: rf.forward(q, k, v, node)), 4))
        use("base")
        add_row(rows, row, "residue_grid_ab.json")


if __name__ == "__main__":
    main()
