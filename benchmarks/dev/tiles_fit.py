"""Fit the per-tile costs of ``patternc.runtime.tiles`` to a tile sweep (``tiles_sweep.py``).

For each config: ``time_us = full * F + partial * P + line * L`` (F / P the FULL / PARTIAL tiles
visited, L the non-empty query rows, plus key columns for the backward), non-negative least
squares on relative error, over the sweep's rows at ``--n`` tokens whose plan is run as plain
blocks (residue-class patterns are left out: their plain counts are not what runs). Prints the
coefficients as ``patternc/runtime/tiles.py`` stores them and each row's predicted / measured.

    python benchmarks/dev/tiles_fit.py benchmarks/dev/tiles_fit_h100.json --n 65536 --d 64
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.optimize import nnls

SKIP = ("stride",)  # runs residue-gathered (patternc.runtime.residue)


def features(row: dict, kind: str) -> list[float]:
    c = row["counts"]
    line = c["rows"] + (c["cols"] if kind == "bwd" else 0)
    return [c["full"], c["partial"], line]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--d", type=int, default=64)
    args = ap.parse_args()
    with open(args.path) as f:
        data = json.load(f)
    rows = [r for r in data["rows"] if r.get("ms") and r["n"] == args.n and r["d"] == args.d
            and not any(s in r["pattern"] for s in SKIP)]
    for kind in ("fwd", "bwd"):
        print(f"{kind}:")
        for cfg in sorted({tuple(r["config"]) for r in rows if r["kind"] == kind}):
            rs = [r for r in rows if r["kind"] == kind and tuple(r["config"]) == cfg]
            x = np.array([features(r, kind) for r in rs], dtype=float)
            y = np.array([r["ms"] * 1e3 for r in rs])
            coef, _ = nnls(x / y[:, None], np.ones_like(y))
            ratio = " ".join(f"{r['pattern'].split('/')[-1][-12:]}={p / t:.2f}"
                             for r, p, t in zip(rs, x @ coef, y))
            print(f"    {cfg}: TileCost({coef[0]:.5f}, {coef[1]:.5f}, {coef[2]:.5f}),  # {ratio}")


if __name__ == "__main__":
    main()
