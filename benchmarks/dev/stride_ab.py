"""Residue launches: tiles' stages x key blocks computed or loaded (session 15, issue #6).

``benchmarks/dev/roofline.py`` found that moving the bytes of ``strided(256) & causal`` at 64k in
the order of its gathered launch takes 0.202 ms, only 2% more than the contiguous order of
``blocks(256) & causal`` (0.198), while our forwards took 0.253 and 0.223. Until session 15 the
gathered launches loaded every key block index from the tables, where plain launches compute
consecutive ones from the work row (``forward.COMPUTED_BLOCKS``). This times residue patterns'
forwards at the rule's tiles and at each ``SA_CONFIGS`` config (gathered launches only), with key
blocks computed (``COMPUTED_BLOCKS`` on: since session 15 every launch of the call; the session
15 runs switched the gathered launches alone) or loaded (off), rounds alternating, each checked
against the default's output. ``block_local_causal`` has no gathered launch: the same process's
reference and its spread.

    SA_CONFIGS='64,64,4,1;64,64,4,2;64,64,4,3' SA_ROUNDS=3 python benchmarks/dev/stride_ab.py
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
from typing import Any

import torch
from devcommon import DT, B, H, median_ms, node_of

import patternc.runtime

fw = importlib.import_module("patternc.runtime.forward")

N = int(os.environ.get("SA_N", "65536"))
D = int(os.environ.get("SA_D", "64"))
PATTERNS = os.environ.get("SA_PATTERNS", "sparse_transformer/sparse_transformer_stride;"
                          "sparse_transformer/sparse_transformer_strided_heads;"
                          "block_local/block_local_causal").split(";")
CONFIGS = [tuple(int(x) for x in c.split(",")) for c in
           os.environ.get("SA_CONFIGS", "64,64,4,1;64,64,4,2;64,64,4,3").split(";")]
ROUNDS = int(os.environ.get("SA_ROUNDS", "3"))


def variant(cfg: tuple[int, ...] | None, computed: bool) -> None:
    """Gathered launches at ``cfg`` (None: the rule's), key blocks computed or loaded."""
    real = VARIANT_BASE
    fw._residue_config = real if cfg is None else (lambda *a, c=cfg: fw.ForwardConfig(*c, split=1 << 30))
    fw.COMPUTED_BLOCKS = computed
    patternc.runtime.reset()


VARIANT_BASE = fw._residue_config


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=DT) for _ in range(3))
    rows: list[dict[str, Any]] = []
    names = list(itertools.product([None, *CONFIGS], (False, True)))
    for text in PATTERNS:
        node = node_of(text)
        variant(None, True)
        ref = fw.forward(q, k, v, node)[0]
        r: dict[str, Any] = {"pattern": text, "n": N, "d": D, "ms": {}, "err": {}}
        for _ in range(ROUNDS):
            for cfg, computed in names:
                key = f"{'rule' if cfg is None else cfg} {'computed' if computed else 'loaded'}"
                variant(cfg, computed)
                out = fw.forward(q, k, v, node)[0]
                r["err"][key] = float((out.float() - ref.float()).abs().max())
                ms = median_ms(lambda node=node: fw.forward(q, k, v, node))  # type: ignore[misc]
                r["ms"].setdefault(key, []).append(round(ms, 4))
        variant(None, True)
        rows.append(r)
        for key, ms in r["ms"].items():
            print(f"{text:52s} {key:28s} {ms} err {r['err'][key]:.2g}", flush=True)
        with open(os.path.join(os.environ.get("OUT", "."), f"stride_ab_n{N}_d{D}.json"), "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
