"""Residue launches with the class as the fastest grid axis or the slowest (session 11, issue #6):
per pattern, the forward at one length with ``runtime.forward._CLASS_FAST`` off and on,
alternating rounds in one process (``do_bench`` medians, the lowest per setting), and the largest
output difference between the two. bf16, B=1, H=16.

    CO_N=65536 CO_D=64 CO_PATTERNS='sparse_transformer/sparse_transformer_stride' \\
        python benchmarks/dev/class_order_ab.py

Rows go to stdout and ``$OUT/class_order_ab_n{N}_d{D}.json``.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import torch
from devcommon import DT, B, H, median_ms, node_of

fw = importlib.import_module("patternc.runtime.forward")

N = int(os.environ.get("CO_N", "65536"))
D = int(os.environ.get("CO_D", "64"))
ROUNDS = int(os.environ.get("CO_ROUNDS", "3"))
PATTERNS = os.environ.get("CO_PATTERNS", ";".join([
    "sparse_transformer/sparse_transformer_stride", "sparse_transformer/sparse_transformer_strided",
    "sparse_transformer/sparse_transformer_strided_heads", "(window(127, 0) | strided(128)) & causal",
    "dilated_sliding_window/dilated_sliding_window_causal", "longformer/longformer_dilated"])).split(";")


def timed(node: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
          on: bool) -> tuple[float, torch.Tensor]:
    fw._CLASS_FAST = on
    fw._launches.cache_clear()
    fw._cached_setup.cache_clear()  # the prepared launches hang on the cached set-ups
    out, _ = fw.forward(q, k, v, node)
    return median_ms(lambda: fw.forward(q, k, v, node)), out


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    rows = []
    for text in PATTERNS:
        node = node_of(text)
        best = {False: float("inf"), True: float("inf")}
        outs = {}
        for _ in range(ROUNDS):
            for on in (False, True):
                ms, outs[on] = timed(node, q, k, v, on)
                best[on] = min(best[on], ms)
        rows.append({"pattern": text, "n": N, "d": D, "class_slowest_ms": best[False],
                     "class_fastest_ms": best[True],
                     "max_abs_diff": float((outs[True].float() - outs[False].float()).abs().max())})
        print(json.dumps(rows[-1]), flush=True)
    fw._CLASS_FAST = False
    with open(os.path.join(os.environ.get("OUT", "."), f"class_order_ab_n{N}_d{D}.json"), "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f,
                  indent=1)


if __name__ == "__main__":
    main()
