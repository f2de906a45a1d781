"""Computed against loaded key blocks in the forward (session 12, issue #6): every pattern's
forward with ``runtime.forward.COMPUTED_BLOCKS`` on and off, rounds alternating in one process,
outputs compared. bf16, B=1, H=16.

    CA_N=65536 CA_D=64 CA_ROUNDS=3 python benchmarks/dev/computed_ab.py   # $OUT/computed_ab.json
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms, node_of

rf = importlib.import_module("patternc.runtime.forward")  # the package exports a function of that name
N = int(os.environ.get("CA_N", "65536"))
D = int(os.environ.get("CA_D", "64"))
ROUNDS = int(os.environ.get("CA_ROUNDS", "3"))
PATTERNS = os.environ.get("CA_PATTERNS", ";".join([
    "block_local/block_local_causal", "block_local/block_local", "band(256)", "causal",
    "longformer/longformer", "bigbird/bigbird_itc", "sparse_transformer/sparse_transformer_stride",
    "sparse_transformer/sparse_transformer_strided", "sparse_transformer/sparse_transformer_fixed",
    "dilated_sliding_window/dilated_sliding_window_causal", "sliding_window/sliding_window_causal",
    "star_transformer/star_transformer"])).split(";")


def use(on: bool) -> None:
    rf.COMPUTED_BLOCKS = on
    rf._cached_setup.cache_clear()
    rf._launches.cache_clear()


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    rows: list[dict[str, Any]] = []
    for text in PATTERNS:
        node = node_of(text)
        row: dict[str, Any] = {"pattern": text, "n": N, "d": D, "computed": [], "loaded": []}
        outs = {}
        for _ in range(ROUNDS):
            for on, key in ((True, "computed"), (False, "loaded")):
                use(on)
                outs[key] = rf.forward(q, k, v, node)[0]
                row[key].append(median_ms(lambda node=node: rf.forward(q, k, v, node)))
        row["same"] = bool(torch.equal(outs["computed"], outs["loaded"]))
        use(True)
        add_row(rows, row, "computed_ab.json")


if __name__ == "__main__":
    main()
