"""One pattern's forward by every path in one process (session 10, issue #6): ``patternc.attention``
(the suite's), ``runtime.forward`` with the rule's config, each config of ``$AB_CONFIGS`` passed
explicitly (the tile sweeps'), and FlexAttention, alternating for ``$AB_ROUNDS`` rounds with the
suite's ``do_bench`` budgets; each keeps its lowest median. Asks why the suite times
``sliding_window_causal`` at 64k slower than the sweeps did.

    AB_PATTERN='sliding_window/sliding_window_causal' AB_N=65536 AB_CONFIGS='64,64,4,3;128,128,4,3' \\
        python benchmarks/dev/fwd_paths_ab.py

Rows go to stdout and ``$OUT/fwd_paths_ab.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch
import triton
from devcommon import DT, B, H, with_flex
from suite import FWD_BENCH, configure_dynamo

import patternc
from patternc.runtime.forward import ForwardConfig, forward

PATTERN = os.environ.get("AB_PATTERN", "sliding_window/sliding_window_causal")
N = int(os.environ.get("AB_N", "65536"))
D = int(os.environ.get("AB_D", "64"))
CONFIGS = [tuple(int(x) for x in c.split(","))
           for c in os.environ.get("AB_CONFIGS", "64,64,4,3;128,128,4,3").split(";")]
ROUNDS = int(os.environ.get("AB_ROUNDS", "3"))


def main() -> None:
    from torch.nn.attention.flex_attention import flex_attention

    configure_dynamo()
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    node, bm, _ = with_flex(PATTERN, N, q, k, v)
    paths: dict[str, Callable[[], Any]] = {
        "attention": lambda: patternc.attention(q, k, v, node),
        "forward": lambda: forward(q, k, v, node),
        "flex": lambda: flex(q, k, v, block_mask=bm),
    }
    for c in CONFIGS:
        cfg = ForwardConfig(*c)
        paths["config " + ",".join(map(str, c))] = lambda cfg=cfg: forward(q, k, v, node, config=cfg)  # type: ignore[misc]
    best: dict[str, float] = {}
    for r in range(ROUNDS):
        for name, fn in paths.items():
            fn()
            t = float(triton.testing.do_bench(fn, **FWD_BENCH, return_mode="median"))
            best[name] = min(best.get(name, t), t)
            print(json.dumps({"round": r, "path": name, "ms": round(t, 4)}), flush=True)
    print(json.dumps(best, indent=1))
    with open(os.path.join(os.environ.get("OUT", "."), "fwd_paths_ab.json"), "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                   "triton": triton.__version__, "pattern": PATTERN, "n": N, "d": D, "best_ms": best},
                  f, indent=1)


if __name__ == "__main__":
    main()
