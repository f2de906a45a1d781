"""Shared set-up of the examples: sizes, device, output folder.

Every example runs on the CPU (Triton's interpreter, tiny sizes) and uses the GPU when there is
one. ``--small`` (or ``PATTERNC_EXAMPLES_SMALL=1``) picks the smallest sizes, which CI runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

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
