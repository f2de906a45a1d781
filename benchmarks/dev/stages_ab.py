"""Pipeline stages of the plain forward launch after the computed key blocks (session 13, issue
#6): every suite pattern whose default forward config has 64x64 tiles at D <= 64, run at its
default and at the other stage count (2 <-> 3), rounds alternating in one process, outputs
compared (max abs difference; 0 where only the stages differ). Beside each row: what the plan's
rows look like at 64x64 (heaviest row, mean FULL / PARTIAL tiles per non-empty row) and whether
every head group's FULL / PARTIAL key blocks are consecutive (the launch computes them:
``runtime.forward.COMPUTED_BLOCKS``).

    SA_N=65536 SA_D=64 SA_ROUNDS=2 python benchmarks/dev/stages_ab.py    # $OUT/stages_ab.json

``SA_ONLY``: ';'-separated substrings of the suite's pattern names (default: all);
``SA_CONFIGS``: ';'-separated ``ForwardConfig`` tuples timed instead of the other stage count
(e.g. D=128's ``64,64,4,3;64,32,4,3``), beside every pattern whose default has 64-row blocks;
``SA_SPLITS``: ','-separated ``ForwardConfig.split`` values (most key blocks per work item; the
default balances over the SMs: ``runtime.forward._auto_split``) timed on the default config
instead, beside every pattern whose heaviest 64x64 row holds more than 32 tiles;
``SA_KNOBS``: ';'-separated variants ``name:ATTR=value,...`` of ``runtime.forward``'s module
constants (e.g. ``old:PROGRAMS_PER_SM=2,FWD_MIN_SPLIT_GAIN=128``), each timed on the default
config beside those patterns too.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any

import torch
from devcommon import DT, H, add_row, median_ms
from suite_core import all_cases, select

from patternc import ir
from patternc.runtime import reset, tiles
from patternc.runtime.forward import ForwardConfig

rf = importlib.import_module("patternc.runtime.forward")  # the package exports a function of that name
N = int(os.environ.get("SA_N", "65536"))
D = int(os.environ.get("SA_D", "64"))
ROUNDS = int(os.environ.get("SA_ROUNDS", "2"))
ONLY = [s for s in os.environ.get("SA_ONLY", "").split(";") if s]
CONFIGS = [ForwardConfig(*(int(x) for x in c.split(",")))
           for c in os.environ.get("SA_CONFIGS", "").split(";") if c]
SPLITS = [int(x) for x in os.environ.get("SA_SPLITS", "").split(",") if x]
KNOBS = {v.split(":")[0]: {a.split("=")[0]: int(a.split("=")[1]) for a in v.split(":")[1].split(",")}
         for v in os.environ.get("SA_KNOBS", "").split(";") if v}
DEFAULTS = {a: getattr(rf, a) for knobs in KNOBS.values() for a in knobs}


def use(knobs: dict[str, int]) -> None:
    """``runtime.forward``'s constants as in ``knobs`` (the rest at their defaults)."""
    for a, default in DEFAULTS.items():
        setattr(rf, a, knobs.get(a, default))
    reset()


def shape(node: ir.Node, cfg: Any) -> dict[str, Any]:
    """The 64x64 plan's row statistics and the launches' computed-block flags."""
    c = tiles.counts(ir.concretize(node, N), N, N, 64, 64, H)
    launches = rf._launches(node, 1, H, H, N, N, D, DT, "cuda", cfg, "auto")
    rows = max(c.rows, 1)
    return {"heaviest": c.heaviest, "full_per_row": round(c.full / rows, 2),
            "partial_per_row": round(c.partial / rows, 2), "launches": len(launches),
            "run": [[list(w.runs) for w in launch.work] for launch in launches],
            "longest_item": [max(_longest(w.items) for w in launch.work) for launch in launches]}


def _longest(items: torch.Tensor) -> int:
    """Most key blocks of one work item (rows: query block, full lo, hi, partial lo, hi, ...)."""
    i = items.long()
    return int((i[:, 2] - i[:, 1] + i[:, 4] - i[:, 3]).max()) if i.numel() else 0


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    rows: list[dict[str, Any]] = []
    for case in select(all_cases(), ONLY or None):
        cfg = rf.dense_config(case.node, rf.default_config(N, N, D, DT, False), N, N, H, D, DT)
        if SPLITS or KNOBS:
            if tiles.counts(ir.concretize(case.node, N), N, N, 64, 64, H).heaviest <= 32:
                continue
            others = [dataclasses.replace(cfg, split=x) for x in SPLITS] + list(KNOBS)
        elif CONFIGS:
            if cfg.block_q != 64:
                continue
            others = [c for c in CONFIGS if c != cfg]
        elif (cfg.block_q, cfg.block_k) != (64, 64) or cfg.num_stages not in (2, 3):
            continue
        else:
            others = [dataclasses.replace(cfg, num_stages=5 - cfg.num_stages)]
        node = case.node
        row: dict[str, Any] = {"pattern": case.label, "n": N, "d": D, "default": dataclasses.astuple(cfg),
                               **shape(node, cfg), "ms": {}}
        outs = {}
        for _ in range(ROUNDS):
            for c in (cfg, *others):
                knob = isinstance(c, str)  # a knob variant, on the default config
                if knob:
                    key, c = c, cfg
                    use(KNOBS[key])
                else:
                    key = "default" if c == cfg else str(dataclasses.astuple(c)[:5 if SPLITS else 4])
                outs[key] = rf.forward(q, k, v, node, config=c)[0]
                ms = median_ms(lambda c=c, node=node: rf.forward(q, k, v, node, config=c))
                row["ms"].setdefault(key, []).append(ms)
                if knob:
                    use({})
        ref = outs["default"].float()
        row["max_abs_diff"] = max(float((o.float() - ref).abs().max()) for o in outs.values())
        add_row(rows, row, "stages_ab.json")


if __name__ == "__main__":
    main()
