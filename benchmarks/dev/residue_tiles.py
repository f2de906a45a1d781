"""Tiles of the residue-class launches (session 6, issue #6): forward and backward of residue-heavy
patterns at one length with the gathered launches' tiles replaced by each candidate (the rest keeps
its own), beside the default, each checked against the default's result. bf16, B=1, H=16.

    RT_N=65536 RT_D=64 python benchmarks/dev/residue_tiles.py

``RT_FWD`` / ``RT_BWD``: ';'-separated candidate tuples (empty: none); ``RT_ROUNDS``: forward
rounds alternating the default and the candidates (times listed per round).

Rows go to stdout and ``$OUT/residue_tiles_n{N}_d{D}.json``.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import torch
from devcommon import DT, B, H, median_ms, node_of

from patternc.codegen.backward import BackwardConfig

fw = importlib.import_module("patternc.runtime.forward")
bw = importlib.import_module("patternc.runtime.backward")

N = int(os.environ.get("RT_N", "65536"))
D = int(os.environ.get("RT_D", "64"))
PATTERNS = os.environ.get("RT_PATTERNS", ";".join([
    "sparse_transformer/sparse_transformer_stride", "sparse_transformer/sparse_transformer_strided",
    "sparse_transformer/sparse_transformer_strided_heads",
    "dilated_sliding_window/dilated_sliding_window_causal"])).split(";")


def _tuples(var: str, default: str) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in c.split(",")) for c in os.environ.get(var, default).split(";") if c]


FWD = _tuples("RT_FWD", "64,64,4,2;128,64,4,3;128,128,4,3;128,128,8,3;64,32,4,2")
BWD = _tuples("RT_BWD", "64,64,64,64,64,64,4,3;128,128,64,128,128,64,8,2;128,64,64,64,128,64,4,2")
ROUNDS = int(os.environ.get("RT_ROUNDS", "1"))


def clear() -> None:
    for f in (fw._launches, fw._cached_setup, bw._setups, bw._cached_setup):
        f.cache_clear()
    bw._CALLS.clear()  # repeated backward calls replay their launches


def row(text: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor) -> dict[str, Any]:
    node = node_of(text)
    real_f, real_b = fw._residue_config, bw._whole
    clear()
    out, lse = fw.forward(q, k, v, node)
    grads = bw.backward(q, k, v, out, lse, do, node)
    r: dict[str, Any] = {"pattern": text, "n": N, "d": D, "fwd": {"default": []}, "bwd": {}}
    try:
        for _ in range(ROUNDS):
            fw._residue_config = real_f
            clear()
            fw.forward(q, k, v, node)
            r["fwd"]["default"].append(median_ms(lambda: fw.forward(q, k, v, node)))
            for c in FWD:
                fw._residue_config = lambda *a, c=c: fw.ForwardConfig(*c, split=1 << 30)
                clear()
                o, _ = fw.forward(q, k, v, node)
                err = (o.float() - out.float()).abs().max().item()
                r["fwd"].setdefault(str(c), []).append((median_ms(lambda: fw.forward(q, k, v, node)), err))
        fw._residue_config = real_f
        clear()
        r["bwd"]["default"] = median_ms(lambda: bw.backward(q, k, v, out, lse, do, node))
        for c in BWD:
            bw._whole = lambda cfg, c=c: BackwardConfig(*c, chunk=1 << 30)
            clear()
            g = bw.backward(q, k, v, out, lse, do, node)
            err = max(((a.float() - b.float()).abs().max() / b.float().abs().max()).item()
                      for a, b in zip(g, grads))
            r["bwd"][str(c)] = [median_ms(lambda: bw.backward(q, k, v, out, lse, do, node)), err]
    finally:
        fw._residue_config, bw._whole = real_f, real_b
        clear()
    return r


def main() -> None:
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(B, H, N, D, device="cuda", dtype=DT) for _ in range(4))
    rows = []
    for text in PATTERNS:
        rows.append(row(text, q, k, v, do))
        print(json.dumps(rows[-1]), flush=True)
        with open(os.path.join(os.environ.get("OUT", "."), f"residue_tiles_n{N}_d{D}.json"), "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
