"""Residue launches' grid order and bound tests (session 14, issue #6): the gathered launches
(``RES``) as on main (the residue class is grid axis 2: a class's work items and heads run
together, classes one after another; no bound tests where every class holds whole blocks,
``residue.whole_classes``) against the class varying fastest (``cls``, forward: programs running
together read neighbouring classes' rows, which are adjacent in memory) and against session 13's
bound tests on every residue launch (``masked``: ``EVEN_*`` off, forward and backward), rounds
alternating in one process, outputs and gradients compared with main's.

    RG_N=65536 RG_D=64 python benchmarks/dev/residue_grid_ab.py    # $OUT/residue_grid_ab.json

``RG_PATTERNS``: ';'-separated stdlib ``file/name`` or ``.sap`` text; ``RG_VARIANTS``:
``base,cls,masked``; ``RG_ROUNDS``; ``RG_BWD=0`` skips the backward.
(Before whole classes were on main, the variant names were ``even`` / ``cls+even`` for them and
``base`` / ``cls`` for bound tests: ``results/residue_grid_ab_h100_2026-11-23_s14_n65536_d64.json``.)
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms, node_of

import patternc.codegen.forward as gf
from patternc.runtime import launch, reset

rf = importlib.import_module("patternc.runtime.forward")
rb = importlib.import_module("patternc.runtime.backward")
N = int(os.environ.get("RG_N", "65536"))
D = int(os.environ.get("RG_D", "64"))
ROUNDS = int(os.environ.get("RG_ROUNDS", "2"))
PATTERNS = os.environ.get("RG_PATTERNS", "sparse_transformer/sparse_transformer_stride;"
                          "sparse_transformer/sparse_transformer_strided;"
                          "sparse_transformer/sparse_transformer_strided_heads;"
                          "dilated_sliding_window/dilated_sliding_window;"
                          "dilated_sliding_window/dilated_sliding_window_causal;"
                          "longformer/longformer_dilated;(window(127, 0) | strided(128)) & causal").split(";")
VARIANTS = os.environ.get("RG_VARIANTS", "base,cls,masked").split(",")
BWD = os.environ.get("RG_BWD", "1") != "0"
BASE_KERNEL, BASE_VERSION = gf._KERNEL, gf.VERSION
# the template's program ids, read from it (the variant below replaces exactly this text)
_FIRST, _LAST = "    if HEADS_FAST:", "    res_c = tl.program_id(2)\n"
IDS = BASE_KERNEL[BASE_KERNEL.index(_FIRST):BASE_KERNEL.index(_LAST) + len(_LAST)]
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
SOURCES = {"base": BASE_KERNEL, "cls": BASE_KERNEL.replace(IDS, CLS_IDS)}
MODE = ["base"]


class Variant(launch.Prepared):
    """A prepared launch laid out as ``MODE[0]`` says (grid order, bound tests)."""

    def __init__(self, fn: Any, grid: tuple[int, ...], args: Any, kwargs: dict[str, Any]) -> None:
        if kwargs.get("RES"):
            if launch.name_of(fn) == "attn_fwd" and "cls" in MODE[0] and not kwargs["HEADS_FAST"]:
                grid = (grid[0] * grid[2], grid[1], 1)
            if "masked" in MODE[0]:
                kwargs = {**kwargs, **{f: False for f in ("EVEN_N", "EVEN_Q", "EVEN_K") if f in kwargs}}
        super().__init__(fn, grid, args, kwargs)


rf.Prepared = Variant  # type: ignore[attr-defined]
rb.Prepared = Variant  # type: ignore[attr-defined]


def use(variant: str) -> None:
    MODE[0] = variant
    template = "cls" if "cls" in variant else "base"
    gf._KERNEL = SOURCES[template]
    gf.VERSION = BASE_VERSION if template == "base" else f"{BASE_VERSION}-{template}"  # type: ignore[assignment]
    reset()


def main() -> None:
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    rows: list[dict[str, Any]] = []
    for text in PATTERNS:
        node = node_of(text)
        use("base")
        ref, lse = rf.forward(q, k, v, node)
        gref = rb.backward(q, k, v, ref, lse, do, node) if BWD else ()
        row: dict[str, Any] = {"pattern": text, "n": N, "d": D, "ms": {}, "bwd_ms": {}, "err": {}}
        for _ in range(ROUNDS):
            for variant in VARIANTS:
                use(variant)
                o = rf.forward(q, k, v, node)[0]
                row["err"][variant] = float((o.float() - ref.float()).abs().max())
                row["ms"].setdefault(variant, []).append(
                    round(median_ms(lambda node=node: rf.forward(q, k, v, node)), 4))
                if BWD and variant != "cls":  # cls reorders the forward only
                    g = rb.backward(q, k, v, ref, lse, do, node)
                    row["err"][variant] = max(row["err"][variant], *(
                        float((a.float() - b.float()).abs().max()) for a, b in zip(g, gref)))
                    row["bwd_ms"].setdefault(variant, []).append(
                        round(median_ms(lambda n=node, o=ref, s=lse: rb.backward(q, k, v, o, s, do, n)), 4))
        use("base")
        add_row(rows, row, "residue_grid_ab.json")


if __name__ == "__main__":
    main()
