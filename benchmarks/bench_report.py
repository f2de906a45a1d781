"""Time ``patternc.analysis.report`` (and its stages) at 1,048,576 tokens: no ``n x n`` array.

    .venv/bin/python benchmarks/bench_report.py [--n 1048576] [--repeat 1] [--cli] [--json out.json]

One row per pattern: wall time of the whole report, then of its stages (the counting sweep,
which also gives the block density unless residue keys lie more than a block apart; the block
density from offsets or from the lowering's block states when it does not; the receptive field),
nnz, and the receptive field with the method that decided it. ``--cli`` also times the command line
``patternc report -e "band(256) | global([0..16])" --n N`` in a fresh process (imports included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from patternc import ir
from patternc.analysis import report
from patternc.analysis.receptive import receptive_field
from patternc.analysis.report import _blocks
from patternc.analysis.tiles import counts_and_blocks

_G = ir.TokenList.range(0, 16)
_SQRT = ir.Func("sqrt", (ir.N(),))
PATTERNS: dict[str, ir.Node] = {
    "band(256) | global([0..16])": ir.Band(256) | ir.Global(_G),
    "band(256)": ir.Band(256),
    "causal": ir.Causal(),
    "band(256) | global([0..16]) | random_blocks(3, 64)":
        ir.Band(256) | ir.Global(_G) | ir.RandomBlocks(3, 64),
    "dilated(256, 2) | global([0..16])": ir.Dilated(256, 2) | ir.Global(_G),
    "(window(127, 0) | strided(128)) & causal": (ir.Window(127, 0) | ir.Strided(128)) & ir.Causal(),
    "strided(sqrt(n)) & causal | window(sqrt(n), 0)": ir.Strided(_SQRT) & ir.Causal() | ir.Window(_SQRT, 0),
    "(band(256) | global([0..16])) & causal": (ir.Band(256) | ir.Global(_G)) & ir.Causal(),
    "strided(2) | band(256)": ir.Strided(2) | ir.Band(256),
    "random(3) | fixed(128, 8) & causal": ir.Random(3) | ir.Fixed(128, 8) & ir.Causal(),
    "strided(1024) & causal | global([0])": ir.Strided(1024) & ir.Causal() | ir.Global(ir.TokenList.of(0)),
    "heads(band(256), causal)": ir.Heads((ir.Band(256), ir.Causal())),
}


T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    times, out = [], fn()
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    if not times:  # one run: time the call that produced the answer
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench(name: str, node: ir.Node, n: int, block: int, repeat: int) -> dict[str, object]:
    total, rep = timed(lambda: report(node, n, block=block), repeat)
    stages: dict[str, object] = {"counts_s": None, "blocks_s": None, "receptive_s": None,
                                 "receptive_field": str(rep.receptive_field), "method": rep.receptive_method}
    if ir.head_counts(node) == 1:  # the stages take head-free patterns
        t_rows, swept = timed(lambda: counts_and_blocks(node, n, n, block), repeat)
        t_blocks = 0.0
        if swept[1] is None:
            t_blocks, _ = timed(lambda: _blocks(ir.concretize(node, n), n, n, block), repeat)
        t_rf, rf = timed(lambda: receptive_field(node, n, block=block), repeat)
        stages = {"counts_s": t_rows, "blocks_s": t_blocks, "receptive_s": t_rf, "receptive_field": str(rf),
                  "method": rf.method}
    return {"pattern": name, "n": n, "report_s": total, "nnz": rep.nnz, "complexity": rep.complexity,
            "block_density": rep.block_density, **stages}


def _s(x: object) -> str:
    return "-" if x is None else f"{x:.2f}"


def bench_cli(n: int) -> float:
    cmd = [sys.executable, "-m", "patternc.cli", "report", "-e", "band(256) | global([0..16])", "--n", str(n)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        raise SystemExit(f"patternc report failed with exit code {proc.returncode}")
    print(proc.stdout)
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cli", action="store_true", help="also time the `patternc report` command")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    cpu = platform.processor() or platform.machine()
    print(f"# bench_report {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {cpu}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"| pattern | report s | sweep s | extra block density s | receptive s | nnz | class | "
          f"block density (B={args.block}) | receptive field |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, node in PATTERNS.items():
        row = bench(name, node, args.n, args.block, args.repeat)
        rows.append(row)
        print(f"| `{name}` | {_s(row['report_s'])} | {_s(row['counts_s'])} | {_s(row['blocks_s'])} | "
              f"{_s(row['receptive_s'])} | {row['nnz']:,} | {row['complexity']} | "
              f"{row['block_density']:.4%} | {row['receptive_field']} ({row['method']}) |", flush=True)
    out: dict[str, object] = {"n": args.n, "block": args.block, "rows": rows}
    if args.cli:
        out["cli_s"] = bench_cli(args.n)
        print(f"`patternc report -e \"band(256) | global([0..16])\" --n {args.n}`: {out['cli_s']:.2f} s "
              "(fresh process, imports included)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
