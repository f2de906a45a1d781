"""Shared set-up of the examples: sizes, device, output folder, and the transformer block.

Every example runs on the CPU (Triton's interpreter, tiny sizes) and uses the GPU when there is
one. ``--small`` (or ``PATTERNC_EXAMPLES_SMALL=1``) picks the smallest sizes, which CI runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

# Triton's interpreter must be chosen before triton is imported (patternc imports it lazily).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parent.parent


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--small", action="store_true", default=os.environ.get("PATTERNC_EXAMPLES_SMALL") == "1",
                    help="smallest sizes (what CI runs); also PATTERNC_EXAMPLES_SMALL=1")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "examples", help="where files are written")
    return ap


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class SparseBlock(nn.Module):
    """A pre-norm transformer block whose attention is any ``(q, k, v) -> out`` function."""

    def __init__(self, dim: int, heads: int, attend: Attend) -> None:
        super().__init__()
        self.heads, self.attend = heads, attend
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        o = self.attend(q.contiguous(), k.contiguous(), v.contiguous())  # [B, H, N, D]
        x = x + self.proj(o.transpose(1, 2).reshape(B, N, C))
        return x + self.mlp(self.norm2(x))
