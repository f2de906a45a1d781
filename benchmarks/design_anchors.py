"""FlexAttention as DESIGN.md measured it, beside ours and the suite's FlexAttention, in one process.

DESIGN.md's anchor table, and with it issue 6's "10x FlexAttention" targets, came from
``shared/bench/anchors_gpu.py``. Its ``mask_mod``s read the global tokens and the random blocks
from tensors (``g[q] | g[k]``, ``rnd[q // 64, k // 64]``), the way a FlexAttention user writes
them, and FlexAttention's own ``create_block_mask`` builds the BlockMask. The suite's
FlexAttention is a stronger baseline: ``patternc.flex.to_flex`` compares indices (the global tokens
are a range) and hands over the plan's block lists. Per anchor pattern (``benchmarks/anchors.py``)
this times ours, FlexAttention on the anchors' ``mask_mod``s and FlexAttention on ``to_flex``'s
BlockMask, forward and backward, and checks that all three compute the same attention (the
anchors' random blocks are ours, read from a table, so the masks are identical).

    python benchmarks/design_anchors.py --n 65536 --json $OUT/design_anchors.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite
from anchors import PATTERNS
from suite_core import BWD_TOL, FWD_TOL, cell, fmt, useful_tflops, verdict

from patternc import ir

Mod = Callable[[Any, Any, Any, Any], Any]
W, G_TOKENS = 256, 16  # the anchors' band half-width and number of global tokens


def block_table(node: ir.Node, n: int, block: int, device: str) -> torch.Tensor:
    """``[n / block, n / block]`` booleans: a block-constant pattern (``random_blocks``) sampled at
    block corners, as the anchors script's ``rnd`` table."""
    from patternc.flex import mask_mod

    starts = torch.arange(0, n, block, device=device)
    zero = torch.zeros((), dtype=torch.int64, device=device)
    return mask_mod(node, n, device=device)(zero, zero, starts[:, None], starts[None, :])


def design_mods(n: int, device: str) -> dict[str, Mod]:
    """The anchors script's ``mask_mod`` for each pattern of ``benchmarks/anchors.py``."""
    from torch.nn.attention.flex_attention import or_masks

    g = torch.zeros(n, dtype=torch.bool, device=device)
    g[:G_TOKENS] = True
    rnd = block_table(ir.RandomBlocks(3, 64), n, 64, device)

    def band(b: Any, h: Any, q: Any, k: Any) -> Any:
        return (q - k).abs() <= W

    def causal(b: Any, h: Any, q: Any, k: Any) -> Any:
        return q >= k

    def dil(b: Any, h: Any, q: Any, k: Any) -> Any:
        return ((q - k).abs() <= 2 * W) & ((q - k) % 2 == 0)

    def glob(b: Any, h: Any, q: Any, k: Any) -> Any:
        return g[q] | g[k]

    def random_blk(b: Any, h: Any, q: Any, k: Any) -> Any:
        return rnd[q // 64, k // 64]

    def strided_local(b: Any, h: Any, q: Any, k: Any) -> Any:
        return (q >= k) & (q - k < 128)

    def strided_stride(b: Any, h: Any, q: Any, k: Any) -> Any:
        return (q >= k) & ((q - k) % 128 == 0)

    mods = {
        "band(256)": band,
        "causal": causal,
        "band(256) | global([0..16])": or_masks(band, glob),
        "band(256) | global([0..16]) | random_blocks(3, 64)": or_masks(band, glob, random_blk),
        "dilated(256, 2) | global([0..16])": or_masks(dil, glob),
        "(window(127, 0) | strided(128)) & causal": or_masks(strided_local, strided_stride),
    }
    assert mods.keys() == PATTERNS.keys(), "benchmarks/anchors.py changed: update design_mods"
    return mods


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def measure(name: str, node: ir.Node, mod: Mod, n: int, d: int, inp: suite.Inputs,
            flex: Any) -> dict[str, Any]:
    """One row: ours, FlexAttention on the anchors' mask_mod and on to_flex's BlockMask."""
    import patternc
    from patternc.flex import to_flex

    r: dict[str, Any] = dict(pattern=name, N=n, D=d)
    r["nnz"], _ = suite.nnz_heads(node, n, suite.H)
    out = patternc.attention(inp.q, inp.k, inp.v, node)
    r["ours_fwd_ms"] = suite.bench(lambda: patternc.attention(inp.q, inp.k, inp.v, node), **suite.FWD_BENCH)
    o = patternc.attention(inp.qg, inp.kg, inp.vg, node)
    grads = torch.autograd.grad(o, inp.grad_inputs, inp.do, retain_graph=True)
    r["ours_bwd_ms"] = suite.grad_time(o, inp)
    del o
    builds = {"design": lambda: suite.build_cbm(mod, n, None, r),
              "to_flex": lambda: to_flex(node, n, device="cuda")}
    for tag, build in builds.items():
        torch._dynamo.reset()  # one compile per mask, as in the suite
        t0 = time.perf_counter()
        bm = build()
        suite.sync()
        r[f"{tag}_build_s"] = time.perf_counter() - t0
        flex_times(tag, bm, flex, inp, (out, grads), r)
        suite.empty_cache()
    return r


def flex_times(tag: str, bm: Any, flex: Any, inp: suite.Inputs, mine: tuple[torch.Tensor, Any],
               r: dict[str, Any]) -> None:
    """FlexAttention on ``bm``: forward and backward medians, and our errors against it, into ``r``."""
    out, grads = mine
    r[f"{tag}_fwd_max_abs_err"] = max_err(out, flex(inp.q, inp.k, inp.v, block_mask=bm))
    r[f"{tag}_fwd_ms"] = suite.bench(lambda: flex(inp.q, inp.k, inp.v, block_mask=bm), **suite.FWD_BENCH)
    fo = flex(inp.qg, inp.kg, inp.vg, block_mask=bm)
    r[f"{tag}_bwd_max_rel_err"] = suite.max_rel_err(
        grads, torch.autograd.grad(fo, inp.grad_inputs, inp.do, retain_graph=True))
    r[f"{tag}_bwd_ms"] = suite.grad_time(fo, inp)


def line(r: dict[str, Any]) -> str:
    """A markdown row: ms (useful TFLOP/s) for ours and both FlexAttention masks, ratios, checks."""
    cells = [f"`{cell(r['pattern'])}`"]
    for p in ("fwd", "bwd"):
        for who in ("ours", "design", "to_flex"):
            ms = r[f"{who}_{p}_ms"]
            cells.append(f"{ms:.3f} ({fmt(useful_tflops(r['nnz'], r['D'], suite.B, ms, p == 'bwd'), '.0f')})")
        cells += [f"{r[f'{w}_{p}_ms'] / r[f'ours_{p}_ms']:.2f}x" for w in ("design", "to_flex")]
    checks = [verdict(r[f"{w}_fwd_max_abs_err"], FWD_TOL) for w in ("design", "to_flex")]
    checks += [verdict(max(r[f"{w}_bwd_max_rel_err"].values()), BWD_TOL) for w in ("design", "to_flex")]
    cells.append("ok" if set(checks) == {"ok"} else "WRONG")
    return "| " + " | ".join(cells) + " |"


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    head = (f"{m['date']}, {m['gpu']}, torch {m['torch']}, triton {m['triton']}; B={suite.B}, H={suite.H}, "
            f"{m['dtype']}; median ms (useful TFLOP/s); `design`: FlexAttention on DESIGN.md's anchor "
            "mask_mods, `to_flex`: on patternc.flex.to_flex's BlockMask\n\n")
    who = ("ours", "design", "to_flex", "vs design", "vs to_flex")
    cols = ["pattern", *(f"{p} {w}" for p in ("fwd", "bwd") for w in who), "same result"]
    rows = [line(r) for r in result["rows"]]
    return head + "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n" + "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--n", type=int, default=65536)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--only", nargs="+", help="anchor patterns (exact keys of benchmarks/anchors.py)")
    p.add_argument("--json", help="JSON path")
    p.add_argument("--md", help="markdown path")
    opts = p.parse_args()
    from torch.nn.attention.flex_attention import flex_attention

    suite.configure_dynamo()
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    inp = suite.Inputs.random(opts.n, opts.d)
    result: dict[str, Any] = dict(meta=suite.meta(sys.argv[1:]), rows=[])
    result["meta"]["argv"] = ["benchmarks/design_anchors.py", *sys.argv[1:]]
    mods = design_mods(opts.n, "cuda")
    for name, node in PATTERNS.items():
        if opts.only and name not in opts.only:
            continue
        result["rows"].append(measure(name, node, mods[name], opts.n, opts.d, inp, flex))
        print(line(result["rows"][-1]), flush=True)
        if opts.json:
            suite.write_json(opts.json, result)
    suite.emit(markdown(result), opts.md)


if __name__ == "__main__":
    main()
