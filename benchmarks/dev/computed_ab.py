"""Computed against loaded key blocks in the forward (sessions 12 and 15, issue #6): every
pattern's forward with ``runtime.forward.COMPUTED_BLOCKS`` on and off, at the rule's tiles and,
for residue-gathered launches, at each ``CA_CONFIGS`` forward config; rounds alternating in one
process, outputs compared. bf16, B=1, H=16.

    CA_N=65536 CA_D=64 CA_ROUNDS=3 python benchmarks/dev/computed_ab.py   # $OUT/computed_ab.json
    CA_CONFIGS='64,64,4,2;64,64,4,3' python benchmarks/dev/computed_ab.py

Session 15's runs (``results/stride_ab_h100_2026-11-23_s15_*``) came from this script's former
sibling ``stride_ab.py``, which switched the gathered launches alone (plain ones always computed).
"""

from __future__ import annotations

import importlib
import itertools
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms, node_of

import patternc.runtime

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
CONFIGS = [tuple(int(x) for x in c.split(",")) for c in os.environ.get("CA_CONFIGS", "").split(";") if c]
RULE = rf._residue_config


def use(on: bool, cfg: tuple[int, ...] | None = None) -> None:
    """Key blocks computed (``on``) or loaded; gathered launches at ``cfg`` (None: the rule's)."""
    rf.COMPUTED_BLOCKS = on
    rf._residue_config = RULE if cfg is None else (lambda *a, c=cfg: rf.ForwardConfig(*c, split=1 << 30))
    patternc.runtime.reset()


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    rows: list[dict[str, Any]] = []
    variants = list(itertools.product([None, *CONFIGS], (True, False)))
    for text in PATTERNS:
        node = node_of(text)
        row: dict[str, Any] = {"pattern": text, "n": N, "d": D}
        outs = {}
        for _ in range(ROUNDS):
            for cfg, on in variants:
                key = ("computed" if on else "loaded") + ("" if cfg is None else f" {cfg}")
                use(on, cfg)
                outs[key] = rf.forward(q, k, v, node)[0]
                row.setdefault(key, []).append(median_ms(lambda node=node: rf.forward(q, k, v, node)))
        row["same"] = all(torch.equal(o, outs["computed"]) for o in outs.values())
        use(True)
        add_row(rows, row, "computed_ab.json")


if __name__ == "__main__":
    main()
