"""Backward benchmark of the anchor patterns: a thin wrapper of ``benchmarks/suite.py`` (forward
and backward; see docs/benchmarks.md), plus the backward tile-config sweep.

    python benchmarks/bench_backward.py             # anchors, N = 16384, 65536
    NS=16384 ONLY=band HEAD_DIM=128 python benchmarks/bench_backward.py
    SWEEP=1 python benchmarks/bench_backward.py     # also time tile configurations at the first N
    SWEEP=only ...                                  # only that

Same as ``python benchmarks/suite.py --set anchors --n $NS --d $HEAD_DIM [--only $ONLY]``; JSON
to ``$OUT/bench_backward.json`` (the sweep: ``$OUT/bench_backward_sweep.json``).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anchors import PATTERNS
from bench_forward import suite_args
from suite import DT, B, H, bench
from suite import main as suite_main

from patternc.codegen.backward import BackwardConfig

SWEEP = [
    BackwardConfig(64, 64, 64, 64, 64, 64, 4, 3),
    BackwardConfig(128, 128, 64, 128, 128, 64, 8, 3),
    BackwardConfig(128, 128, 32, 128, 128, 32, 4, 2),
    BackwardConfig(64, 64, 32, 64, 64, 32, 4, 2),
    BackwardConfig(64, 64, 64, 64, 64, 64, 4, 2),
    BackwardConfig(128, 128, 64, 128, 128, 64, 8, 2),
    BackwardConfig(64, 64, 32, 64, 64, 32, 4, 3),
]


def sweep(n: int, d: int, names: list[str]) -> list[dict]:
    """Bare-kernel medians of a few tile configurations (to choose the defaults)."""
    from patternc.runtime.backward import backward
    from patternc.runtime.forward import forward

    q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=DT) for _ in range(4))
    rows = []
    for name in names:
        node = PATTERNS[name]
        out, lse = forward(q, k, v, node)
        for cfg in SWEEP:
            try:
                ms = bench(functools.partial(backward, q, k, v, out, lse, do, node, config=cfg),
                           warmup=10, rep=60)
                rows.append(dict(pattern=name, N=n, config=repr(cfg), ms=ms))
            except Exception as e:
                rows.append(dict(pattern=name, N=n, config=repr(cfg), error=repr(e)[:200]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    env = dict(os.environ)
    if env.get("SWEEP"):
        n = int(env.get("NS", "16384").split(",")[0])
        names = [p for p in PATTERNS if not env.get("ONLY") or env["ONLY"] in p]
        rows = sweep(n, int(env.get("HEAD_DIM", "64")), names)
        meta = dict(date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    gpu=torch.cuda.get_device_name(), torch=torch.__version__)
        with open(os.path.join(env.get("OUT", "."), "bench_backward_sweep.json"), "w") as f:
            json.dump(dict(meta=meta, sweep=rows), f, indent=1)
        if env["SWEEP"] == "only":
            return
    suite_main(suite_args(env, False, "16384,65536", "bench_backward.json"))


if __name__ == "__main__":
    main()
