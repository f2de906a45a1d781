"""Example 3: train a tiny long-context language model a few steps with a standard-library pattern.

    python examples/03_train_tiny.py            # 2k tokens, 300 steps (GPU)
    python examples/03_train_tiny.py --small    # 64 tokens, a few steps on the CPU interpreter (CI)

The data is periodic: each sequence repeats a random motif of length P, so the next token is
always the one P positions back. Sparse Transformer's *strided* pattern with stride P
(`sparse_transformer_strided(l = P)` from stdlib_patterns/) reaches exactly those keys, so the
loss falls well below the log(vocab) of guessing once the motif has been seen.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import torch
from _common import SparseBlock, device, parser
from torch import nn

import patternc

STDLIB = Path(patternc.__file__).parent / "stdlib_patterns"


class TinyLM(nn.Module):
    def __init__(self, vocab: int, n: int, dim: int, heads: int, layers: int, pattern: patternc.Node) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(n, dim)
        attend = functools.partial(patternc.attention, pattern=pattern)
        self.blocks = nn.ModuleList(SparseBlock(dim, heads, attend) for _ in range(layers))
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)


def batch(b: int, n: int, period: int, vocab: int, dev: torch.device) -> torch.Tensor:
    motif = torch.randint(0, vocab, (b, period), device=dev)
    return motif.repeat(1, -(-(n + 1) // period))[:, :n + 1]


def main() -> int:
    ap = parser(__doc__ or "")
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    dev = device()
    n, period, dim, heads, layers, steps, bsz = ((64, 8, 32, 2, 1, 3, 1) if args.small
                                                  else (2048, 32, 128, 4, 2, 300, 16))
    steps = args.steps or steps
    vocab = 16
    pattern = patternc.load(STDLIB / "sparse_transformer.sap")["sparse_transformer_strided"](l=period)
    print(f"pattern: {pattern.sap()}  (n = {n}, device {dev.type})")
    rep = pattern.report(n)
    print(f"  {rep.nnz:,} of {n * n:,} pairs ({rep.density:.3%}), class {rep.complexity}")

    torch.manual_seed(0)
    model = TinyLM(vocab, n, dim, heads, layers, pattern).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        seq = batch(bsz, n, period, vocab, dev)
        logits = model(seq[:, :-1])
        # positions after the first period are predictable from the one P back
        target = seq[:, period + 1:]
        loss = nn.functional.cross_entropy(logits[:, period:].reshape(-1, vocab), target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  ({time.perf_counter() - t0:.1f}s)")
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} (guessing: {math.log(vocab):.3f})")
    if not all(math.isfinite(x) for x in losses):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
