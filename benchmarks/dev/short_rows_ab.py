"""Short causal rows A/B (session 12, issue #6): the patterns whose rows are 256-token causal
blocks, plain (``block_local_causal``) or residue-gathered (``strided(256) & causal``), under
several forward tile configs (plain: the launch's; gathered: the residue launches', which
``runtime.forward._residue_config`` otherwise fixes), forward templates, and backward configs
(given explicitly, a config also sets the residue steps' tiles). Every variant's output is
compared with the default's (max abs error); FlexAttention is timed beside them.

    AB_N=65536 AB_D=64 AB_PATTERNS='block_local/block_local_causal;strided(256) & causal' \
        python benchmarks/dev/short_rows_ab.py

``AB_FWD`` / ``AB_BWD``: ';'-separated config tuples (``ForwardConfig`` / ``BackwardConfig``
fields); ``AB_TEMPLATES``: comma list of forward templates (``base``, ``pfirst``: PARTIAL tiles
before FULL ones, ``p1``: the PARTIAL loop not pipelined, ``kt``: K loaded untransposed and
transposed in registers, as in ``tma_fwd.py``; ``p0``: a row's first PARTIAL tile in straight-line
code, the rest in the loop; ``ktp0``: both). Rows go to stdout and ``$OUT/short_rows_ab.json``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any

import torch
from devcommon import gpu_rows, median_ms, node_of, partial_first, trans_k

import patternc.codegen.forward as gf
from patternc.codegen.backward import BackwardConfig
from patternc.runtime.backward import backward
from patternc.runtime.forward import ForwardConfig

rf = importlib.import_module("patternc.runtime.forward")
N = int(os.environ.get("AB_N", "65536"))
D = int(os.environ.get("AB_D", "64"))
PATTERNS = os.environ.get("AB_PATTERNS", "block_local/block_local_causal;strided(256) & causal").split(";")


def _tuples(var: str, default: str) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in c.split(",")) for c in os.environ.get(var, default).split(";") if c]


FWD = _tuples("AB_FWD", "64,64,4,2;64,64,4,3;64,64,4,1;64,64,8,2;128,64,4,2;128,64,8,2;64,32,4,2;32,32,4,2")
BWD = _tuples("AB_BWD", "64,64,64,64,64,64,4,2;64,64,32,64,64,32,4,2;64,64,32,64,64,32,4,3;"
              "64,64,32,64,64,32,4,2,0,0,0,2;128,128,64,128,128,64,8,2")
TEMPLATES = os.environ.get("AB_TEMPLATES", "base,pfirst").split(",")
BASE_KERNEL, BASE_VERSION, BASE_RESIDUE = gf._KERNEL, gf.VERSION, rf._residue_config


PARTIAL_LOOP = "    for t in range(tl.load(WORK + w * 8 + 3), tl.load(WORK + w * 8 + 4)):"
SOURCES = {"base": BASE_KERNEL, "pfirst": partial_first(BASE_KERNEL),
           # the PARTIAL loop (one diagonal tile per row here) not software-pipelined
           "p1": BASE_KERNEL.replace(PARTIAL_LOOP, PARTIAL_LOOP.replace(
               "range(", "tl.range(").replace("):", ", num_stages=1):")),
           "kt": trans_k(BASE_KERNEL)}
assert SOURCES["p1"] != BASE_KERNEL


def first_partial_straight(text: str) -> str:
    """The template with a row's first PARTIAL tile visited in straight-line code (as
    ``tma_fwd.py``'s diagonal tile) and only the rest in the loop."""
    visit = text.split(PARTIAL_LOOP)[1].split("    if slot < 0:")[0]
    lo, hi = "tl.load(WORK + w * 8 + 3)", "tl.load(WORK + w * 8 + 4)"
    head = f"    p_lo = {lo}\n    p_hi = {hi}\n    if p_lo < p_hi:\n        t = p_lo{visit.rstrip()}\n"
    loop = PARTIAL_LOOP.replace(lo, "p_lo + 1").replace(hi, "p_hi")
    return text.replace(PARTIAL_LOOP + visit, head + loop + visit)


SOURCES["p0"] = first_partial_straight(BASE_KERNEL)
SOURCES["ktp0"] = first_partial_straight(SOURCES["kt"])
assert SOURCES["p0"] != BASE_KERNEL


def _use(template: str, residue_cfg: ForwardConfig | None) -> None:
    gf._KERNEL = SOURCES[template]
    gf.VERSION = f"{BASE_VERSION}-{template}"  # type: ignore[assignment]
    rf._residue_config = (BASE_RESIDUE if residue_cfg is None else  # type: ignore[assignment]
                          lambda *a: dataclasses.replace(residue_cfg, split=1 << 30))
    for f in (rf.kernel_module, rf._cached_setup, rf._launches):
        f.cache_clear()


def row(text: str, flex: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        do: torch.Tensor) -> dict[str, Any]:
    from patternc.flex import to_flex

    node = node_of(text)
    bm = to_flex(node, N, device="cuda")
    out: dict[str, Any] = {"pattern": text, "n": N, "d": D,
                           "flex_fwd": median_ms(lambda: flex(q, k, v, block_mask=bm))}
    _use("base", None)
    ref, lse = rf.forward(q, k, v, node)
    out["default_fwd"] = median_ms(lambda: rf.forward(q, k, v, node))
    fwd: dict[str, Any] = {}
    for template in TEMPLATES:
        for c in FWD:
            cfg = ForwardConfig(*c)
            _use(template, cfg)  # the residue launches' tiles
            try:
                o, _ = rf.forward(q, k, v, node, config=cfg)  # and the plain launch's
                fwd[f"{template} {c}"] = (median_ms(lambda cfg=cfg: rf.forward(q, k, v, node, config=cfg)),
                                          float((o.float() - ref.float()).abs().max()))
            except Exception as e:  # a sweep records failures
                fwd[f"{template} {c}"] = (None, repr(e)[:160])
    _use("base", None)
    out["fwd"] = fwd
    gref = backward(q, k, v, ref, lse, do, node)
    out["default_bwd"] = median_ms(lambda: backward(q, k, v, ref, lse, do, node))
    bwd: dict[str, Any] = {}
    for c in BWD:
        cb = BackwardConfig(*c)
        try:
            g = backward(q, k, v, ref, lse, do, node, config=cb, residue_mode="auto")
            err = max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                      for a, b in zip(g, gref))
            bwd[str(c)] = (median_ms(lambda cb=cb: backward(q, k, v, ref, lse, do, node, config=cb,
                                                      residue_mode="auto")), err)
        except Exception as e:
            bwd[str(c)] = (None, repr(e)[:160])
    out["bwd"] = bwd
    return out


def show(r: dict[str, Any]) -> str:
    lines = [f"{r['pattern']}: flex fwd {r['flex_fwd']:.3f}, default fwd {r['default_fwd']:.3f}, "
             f"default bwd {r['default_bwd']:.3f}"]
    lines += [f"    fwd {key:28s} {val}" for key, val in r["fwd"].items()]
    lines += [f"    bwd {key:40s} {val}" for key, val in r["bwd"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    gpu_rows(PATTERNS, N, D, row, "short_rows_ab.json", show)
