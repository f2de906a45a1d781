"""Exact run-length block states -> padded BCSR tables (FlexAttention's layout) and statistics."""

from __future__ import annotations

import numpy as np
import torch

from patternc.lower.rle import EMPTY, FULL, PARTIAL, BlockRLE
from patternc.plan import BlockTables

_LONG = 64  # runs at least this long are copied as slices, shorter ones scattered in bulk


def _row_counts(rle: BlockRLE, state: int) -> np.ndarray:
    sel = rle.state == state
    n = (rle.stop - rle.start)[sel]
    return np.bincount(rle.row[sel], weights=n, minlength=rle.R).astype(np.int64)


def _fill(rle: BlockRLE, state: int, out: np.ndarray) -> None:
    """Write each row's blocks in ``state`` into ``out[row, :count]`` (ascending)."""
    sel = rle.state == state
    row, start = rle.row[sel], rle.start[sel]
    n = rle.stop[sel] - start
    if row.size == 0:
        return
    before = np.cumsum(n) - n
    pos = before - before[np.searchsorted(row, row, side="left")]
    long = n >= _LONG
    ar = np.arange(rle.C, dtype=out.dtype)
    for r, p, s, k in zip(row[long].tolist(), pos[long].tolist(), start[long].tolist(), n[long].tolist()):
        out[r, p:p + k] = ar[s:s + k]
    short = ~long
    row, start, n, pos = row[short], start[short], n[short], pos[short]
    total = int(n.sum())
    first = np.cumsum(n) - n
    t = np.arange(total, dtype=np.int64) - np.repeat(first, n)
    out[np.repeat(row, n), np.repeat(pos, n) + t] = np.repeat(start, n) + t


def tables(rles: list[BlockRLE]) -> BlockTables:
    """One BlockTables from per-head-group exact states (all the same shape)."""
    R = rles[0].R
    G = len(rles)
    parts = []
    for state in (PARTIAL, FULL):
        counts = [_row_counts(r, state) for r in rles]
        width = max([int(c.max()) if c.size else 0 for c in counts] + [0])
        # zeros come lazily from the OS: only the pages that hold entries are ever touched
        idx = np.zeros((G, R, width), dtype=np.int32)
        for g, r in enumerate(rles):
            _fill(r, state, idx[g])
        num = np.stack(counts).astype(np.int32) if G else np.zeros((0, R), dtype=np.int32)
        parts += [torch.from_numpy(num), torch.from_numpy(idx)]
    return BlockTables(parts[0], parts[1], parts[2], parts[3])


def stats(fwd: BlockTables, bwd: BlockTables, nqb: int, nkb: int) -> dict[str, float | int]:
    """Block density, FULL / PARTIAL counts (summed over head groups), heaviest row and column."""
    G = int(fwd.num.shape[0])
    partial, full = int(fwd.num.sum()), int(fwd.full_num.sum())
    cells = G * nqb * nkb
    row = fwd.num + fwd.full_num
    col = bwd.num + bwd.full_num
    return {
        "block_density": (partial + full) / cells if cells else 0.0,
        "full_blocks": full,
        "partial_blocks": partial,
        "nonempty_blocks": partial + full,
        "heaviest_row": int(row.max()) if row.numel() else 0,
        "heaviest_col": int(col.max()) if col.numel() else 0,
        "mean_row": float(row.double().mean()) if row.numel() else 0.0,
        "empty_rows": int((row == 0).sum()),
    }


__all__ = ["EMPTY", "tables", "stats"]
