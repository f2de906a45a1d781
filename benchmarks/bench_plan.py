"""Time ``patternc.lower.lower`` (uncached) on the anchor and stdlib patterns at 64k and 1M tokens.

    .venv/bin/python benchmarks/bench_plan.py [--n 65536,1048576] [--block 128] [--json out.json]

Prints one row per (pattern, n): the best of ``--repeat`` build times of the plan (classification, forward and
transposed tables, statistics), the extra time of its execution branches (``plan.strategies``,
built on first access), block density, non-empty blocks and heaviest row / column.
``bench_flex_build.py`` compares with FlexAttention's ``create_block_mask`` on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from anchors import PATTERNS

from patternc import ir
from patternc.lower import lower

ANCHORS: dict[str, ir.Node] = {**PATTERNS, "fixed(128, 8) & causal": ir.Fixed(128, 8) & ir.Causal()}


def stdlib_patterns() -> dict[str, ir.Node]:
    """Every exported stdlib pattern with its defaults (empty if the frontend is not there)."""
    out: dict[str, ir.Node] = {}
    try:
        import patternc
    except ImportError:  # pragma: no cover
        return out
    root = Path(patternc.__file__).parent / "stdlib_patterns"
    for path in sorted(root.glob("*.sap")):
        try:
            prog = patternc.load(str(path))  # type: ignore[attr-defined]
            for name in prog.exported:
                out[f"stdlib {path.stem}.{name}"] = prog[name]()
        except Exception as e:  # a broken stdlib file must not stop the benchmark
            print(f"skip {path.name}: {e}", file=sys.stderr)
    return out


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs: on a shared machine the minimum is the cost of the work,
    the rest is other people's load."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return min(times)


def build(node: ir.Node, n: int, block: int) -> object:
    return lower.__wrapped__(node, n, n, block_q=block, block_k=block)  # bypass the cache


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="65536,1048576")
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="", help="substring filter on pattern labels")
    ap.add_argument("--no-stdlib", action="store_true")
    ap.add_argument("--json", default="")
    ap.add_argument("--branches-max-n", type=int, default=65536,
                    help="time plan.strategies (built on first access) only up to this n")
    args = ap.parse_args(argv)
    pats = dict(ANCHORS)
    if not args.no_stdlib:
        pats.update(stdlib_patterns())
    rows = []
    machine = platform.processor() or platform.machine()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {machine}"
          f" torch {torch.__version__} threads {torch.get_num_threads()}")
    print(f"{'pattern':64s} {'n':>8s} {'ms':>8s} {'+br ms':>8s} {'density':>8s} {'blocks':>9s} "
          f"{'heavy r/c':>11s}")
    for label, node in pats.items():
        if args.only not in label:
            continue
        for n in (int(x) for x in args.n.split(",")):
            try:
                heads = ir.head_counts(node)
                plan = lower.__wrapped__(node, n, n, block_q=args.block, block_k=args.block,
                                         heads=heads if heads > 1 else None)
                ms = best_ms(lambda node=node, n=n, heads=heads: lower.__wrapped__(
                    node, n, n, block_q=args.block, block_k=args.block, heads=heads if heads > 1 else None),
                    args.repeat)
            except ir.PatternError as e:
                print(f"{label[:64]:64s} {n:8d} error: {e}")
                continue
            br = float("nan")
            if n <= args.branches_max_n:
                br = best_ms(lambda node=node, n=n, heads=heads: len(lower.__wrapped__(
                    node, n, n, block_q=args.block, block_k=args.block,
                    heads=heads if heads > 1 else None).strategies), args.repeat) - ms
            s = plan.stats
            rows.append({"pattern": label, "sap": node.sap(), "n": n, "block": args.block, "ms": ms,
                         "branches_ms": br, **s})
            print(f"{label[:64]:64s} {n:8d} {ms:8.2f} {br:8.2f} {s['block_density']:8.4f} "
                  f"{s['nonempty_blocks']:9d} "
                  f"{s['heaviest_row']:5d}/{s['heaviest_col']:<5d}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
