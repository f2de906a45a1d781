"""Block-mask build time on a GPU machine: FlexAttention's ``create_block_mask`` vs patternc.

    python benchmarks/bench_flex_build.py [--n 65536] [--json out.json]

For each pattern, in one process: ``create_block_mask(mask_mod, ...)`` on the GPU
(``_compile=True``, as in DESIGN.md's anchors, after a compiling first call) with the
pattern's own ``patternc.flex.mask_mod``; ``patternc.lower.lower`` (uncached, host CPU: the plan
as runs); "ready": lowering plus moving the runs to the GPU and expanding the forward and
backward index tensors there (what our kernels read); "move": that last part alone;
``patternc.flex.to_flex(device="cuda")`` (uncached: the same plus padding to FlexAttention's
width). Each is timed once per round, the rounds interleaved (``--rounds``, default 15), and the
median of each is reported: a busy host slows all of them alike. Both BlockMasks are checked to list the
same PARTIAL and FULL blocks. ``--all`` takes every stdlib pattern (default: a representative few).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_plan import ANCHORS, stdlib_patterns

from patternc import ir
from patternc.flex import mask_mod, to_flex
from patternc.lower import lower

STDLIB = ("longformer.longformer", "longformer.longformer_heads", "bigbird.bigbird_itc",
          "sparse_transformer.sparse_transformer_strided", "sparse_transformer.sparse_transformer_fixed",
          "streaming_llm.streaming_llm", "prefix_lm.prefix_lm",
          "dilated_sliding_window.dilated_sliding_window")


def timed(fn: Callable[[], object], reps: int, sync: bool = True) -> float:
    out = []
    sync = sync and torch.cuda.is_available()
    for _ in range(reps):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def same_blocks(a, b) -> bool:  # type: ignore[no-untyped-def]
    """Both BlockMasks list the same PARTIAL and the same FULL blocks (order-free)."""
    def dense(num: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        cols = torch.arange(idx.shape[-1], device=idx.device)
        out = torch.zeros(*idx.shape[:-1], idx.shape[-1] + 1, dtype=torch.bool, device=idx.device)
        out.scatter_(-1, torch.where(cols < num[..., None], idx.long(), idx.shape[-1]), True)
        return out[..., :-1]

    h = max(a.kv_num_blocks.shape[1], b.kv_num_blocks.shape[1])
    pa = dense(a.kv_num_blocks, a.kv_indices).expand(1, h, -1, -1)
    pb = dense(b.kv_num_blocks, b.kv_indices).expand(1, h, -1, -1)
    fa = dense(a.full_kv_num_blocks, a.full_kv_indices).expand(1, h, -1, -1)
    fb = dense(b.full_kv_num_blocks, b.full_kv_indices).expand(1, h, -1, -1)
    return bool(torch.equal(pa, pb) and torch.equal(fa, fb))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--json", default="")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--only", default="", help="substring filter on pattern labels")
    ap.add_argument("--all", action="store_true", help="every stdlib pattern")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (median)")
    ap.add_argument("--no-cbm", action="store_true", help="skip create_block_mask (very long inputs)")
    args = ap.parse_args(argv)
    from torch.nn.attention.flex_attention import create_block_mask

    torch._dynamo.config.cache_size_limit = 256  # one compiled create_block_mask per mask_mod
    n, dev = args.n, args.device
    pats = dict(ANCHORS)
    lib = stdlib_patterns()
    pats.update({k: v for k, v in lib.items() if args.all or k.removeprefix("stdlib ") in STDLIB})
    gpu = torch.cuda.get_device_name() if dev == "cuda" else dev
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {gpu} torch {torch.__version__} n={n}")
    print(f"{'pattern':60s} {'cbm ms':>8s} {'cbm 1st s':>9s} {'lower ms':>9s} {'ready ms':>9s} "
          f"{'move ms':>8s} {'to_flex ms':>10s} same")
    rows = []
    for label, node in pats.items():
        if args.only not in label:
            continue
        G = ir.head_counts(node)
        heads = G if G > 1 else None
        mm: Any = None
        try:
            if args.no_cbm:
                raise RuntimeError("skipped")
            mm = mask_mod(node, n, n, heads=heads, device=dev)
            t0 = time.perf_counter()
            theirs = create_block_mask(mm, None, heads, n, n, device=dev, _compile=True)
            if dev == "cuda":
                torch.cuda.synchronize()
            first = time.perf_counter() - t0
        except Exception as e:  # OOM or a compile failure: report it, go on
            print(f"{label[:60]:60s} create_block_mask failed: {type(e).__name__}: {str(e)[:80]}")
            theirs, first = None, float("nan")

        def cbm_once(mm: Any = mm, heads: int | None = heads) -> object:
            return create_block_mask(mm, None, heads, n, n, device=dev, _compile=True)

        def lower_once(node: ir.Node = node, heads: int | None = heads) -> object:
            lower.cache_clear()
            return lower(node, n, n, heads=heads)

        def flex_once(node: ir.Node = node, heads: int | None = heads) -> object:
            lower.cache_clear()
            return to_flex(node, n, n, heads=heads, device=dev)

        def ready_once(node: ir.Node = node, heads: int | None = heads) -> object:
            return lower_once(node, heads).to(dev).expanded()  # type: ignore[attr-defined]

        def move_once(node: ir.Node = node, heads: int | None = heads) -> Callable[[], object]:
            plan = lower_once(node, heads)  # lowered outside the timed part
            return lambda: plan.to(dev).expanded()  # type: ignore[attr-defined]

        # interleaved rounds, a median per measure: a busy host slows all of them alike
        times: dict[str, list[float]] = {k: [] for k in ("cbm", "lower", "ready", "move", "flex")}
        for _ in range(args.rounds):
            if theirs is not None:
                times["cbm"].append(timed(cbm_once, 1))
            times["lower"].append(timed(lower_once, 1, sync=False))
            times["ready"].append(timed(ready_once, 1))
            times["move"].append(timed(move_once(), 1))
            if not args.no_cbm:
                times["flex"].append(timed(flex_once, 1))
        cbm, t_lower, t_ready, t_move, t_flex = (statistics.median(v) if v else float("nan")
                                                 for v in times.values())
        same = same_blocks(flex_once(), theirs) if theirs is not None else None
        rows.append({"pattern": label, "sap": node.sap(), "n": n, "create_block_mask_ms": cbm,
                     "create_block_mask_first_s": first, "lower_ms": t_lower, "ready_ms": t_ready,
                     "move_expand_ms": t_move,
                     "to_flex_ms": t_flex, "same_blocks": same})
        print(f"{label[:60]:60s} {cbm:8.2f} {first:9.2f} {t_lower:9.2f} {t_ready:9.2f} {t_move:8.2f} "
              f"{t_flex:10.2f} {same}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
