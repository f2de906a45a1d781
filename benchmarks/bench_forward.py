"""Forward benchmark of the anchor patterns: a thin wrapper of ``benchmarks/suite.py`` (which
measures every pattern; see docs/benchmarks.md), plus the forward tile-config sweep.

    python benchmarks/bench_forward.py            # anchors, forward only, N = 4096, 16384, 65536
    NS=4096 ONLY=band HEAD_DIM=128 python benchmarks/bench_forward.py
    SWEEP=1 python benchmarks/bench_forward.py    # tile configs at 16k (SWEEP=causal: at 64k)

Same as ``python benchmarks/suite.py --set anchors --fwd-only --n $NS --d $HEAD_DIM [--only $ONLY]``;
JSON to ``$OUT/bench_forward.json``. ``PATTERNS``, ``bench``, ``nnz_of`` and ``strategy_of`` stay
importable from here (``bench_residue.py`` uses them).
"""

from __future__ import annotations

import functools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anchors import PATTERNS
from suite import DT, B, H, bench, nnz_of, strategy_of
from suite import main as suite_main

__all__ = ["PATTERNS", "bench", "nnz_of", "strategy_of", "suite_args"]

# block configs (BLOCK_M, BLOCK_N, warps, stages) and patterns of the two sweeps, by $SWEEP
_SWEEPS = {
    "1": (16384, [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 4, 2), (64, 64, 4, 3),
                  (128, 32, 4, 3), (64, 128, 4, 3)],
          ("band(256)", "causal", "band(256) | global([0..16])", "dilated(256, 2) | global([0..16])")),
    "causal": (65536, [(64, 64, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3), (128, 64, 4, 4), (128, 128, 8, 3),
                       (128, 128, 8, 2), (128, 32, 4, 4), (64, 128, 4, 3)],
               ("causal", "band(256)")),
}


def sweep(kind: str, d: int) -> None:
    """SWEEP=1 (16k; picks default_config's choices) or SWEEP=causal (64k): median ms per config."""
    from patternc.runtime.forward import ForwardConfig, forward

    n, shapes, names = _SWEEPS.get(kind, _SWEEPS["1"])
    q, k, v = (torch.randn(B, H, n, d, device="cuda", dtype=DT) for _ in range(3))
    configs = [ForwardConfig(bq, bk, w, st) for bq, bk, w, st in shapes]
    for name in names:
        times = []
        for cfg in configs:
            try:
                ms = bench(functools.partial(forward, q, k, v, PATTERNS[name], config=cfg))
                times.append(f"{cfg.block_q}x{cfg.block_k}/w{cfg.num_warps}/s{cfg.num_stages}: {ms:.3f}")
            except Exception as e:
                times.append(f"{cfg}: {e!r}"[:120])
        print(f"sweep N={n} {name}: " + "; ".join(times), flush=True)


def suite_args(env: dict[str, str], fwd_only: bool, default_ns: str, json_name: str) -> list[str]:
    """The suite's command line for the old environment interface (NS, HEAD_DIM, ONLY, OUT)."""
    args = ["--set", "anchors", "--n", env.get("NS", default_ns), "--d", env.get("HEAD_DIM", "64"),
            "--json", os.path.join(env.get("OUT", "."), json_name)]
    if env.get("ONLY"):
        args += ["--only", env["ONLY"]]
    return args + (["--fwd-only"] if fwd_only else [])


def main() -> None:
    if os.environ.get("SWEEP"):
        sweep(os.environ["SWEEP"], int(os.environ.get("HEAD_DIM", "64")))
        return
    suite_main(suite_args(dict(os.environ), True, "4096,16384,65536", "bench_forward.json"))


if __name__ == "__main__":
    main()
