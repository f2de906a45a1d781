"""Pictures of patterns: masks, block layouts, costs versus ``n``, degree histograms.

Everything draws on plain :class:`matplotlib.figure.Figure` objects (the Agg canvas, no pyplot
and no global backend switch), so the module works headless and never touches a user's
interactive matplotlib state. Nothing here builds an ``n x n`` array from a pattern: masks come
in from the caller (small ``n``), block layouts from a lowered Plan's tables.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullLocator

# mask pictures: 0 = not attended, 1 = attended, 2 = separator between heads
_MASK_COLORS = ListedColormap(["#ffffff", "#1f3b73", "#b0b0b0"])
# block layouts: 0 = EMPTY, 1 = PARTIAL, 2 = FULL
_BLOCK_HEX = ("#ffffff", "#f28e2b", "#1f3b73")
_BLOCK_COLORS = ListedColormap(list(_BLOCK_HEX))
_BLOCK_NAMES = ("empty", "partial", "full")
_MIN_SIDE = 256  # small masks are scaled up to about this many pixels
_MAX_SIDE = 512  # block layouts are downsampled to at most this many pixels a side


def _as_numpy(mask: Any) -> np.ndarray:
    """A boolean numpy array from a torch tensor, a numpy array or nested lists."""
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask, dtype=bool)
    if arr.ndim not in (2, 3):
        raise ValueError(f"a mask is [nq, nk] or [H, nq, nk], got shape {arr.shape}")
    return arr


def mask_image(mask: Any) -> np.ndarray:
    """An integer picture of a mask: heads side by side, separated by a one-pixel gray column."""
    arr = _as_numpy(mask)
    if arr.ndim == 2:
        return arr.astype(np.uint8)
    sep = np.full((arr.shape[1], 1), 2, dtype=np.uint8)
    tiles: list[np.ndarray] = []
    for h, plane in enumerate(arr):
        tiles += ([sep] if h else []) + [plane.astype(np.uint8)]
    return np.hstack(tiles) if tiles else np.zeros((arr.shape[1], 0), dtype=np.uint8)


def save_mask_png(mask: Any, path: str | Path) -> None:
    """Write a mask (``[nq, nk]`` or ``[H, nq, nk]``, bool) as a PNG: one cell per pair, dark where
    the query attends to the key, scaled up by an integer factor when the mask is small."""
    img = mask_image(mask)
    if img.size == 0:
        img = np.zeros((1, 1), dtype=np.uint8)
    scale = max(1, _MIN_SIDE // max(img.shape))
    img = np.kron(img, np.ones((scale, scale), dtype=np.uint8))
    imsave(str(path), img, cmap=_MASK_COLORS, vmin=0, vmax=2, format="png")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def mask_figure(mask: Any, title: str = "") -> Figure:
    """The mask as a picture with query / key axes (heads side by side)."""
    arr = _as_numpy(mask)
    img = mask_image(arr)
    fig = Figure(figsize=(4.2 if arr.ndim == 2 else 2.2 + 2.0 * arr.shape[0], 4.0))
    ax = fig.add_subplot()
    ax.imshow(img, cmap=_MASK_COLORS, vmin=0, vmax=2, interpolation="nearest", aspect="equal")
    heads = "" if arr.ndim == 2 else f", {arr.shape[0]} heads"
    ax.set_title(title or f"mask, nq={arr.shape[-2]}, nk={arr.shape[-1]}{heads}", fontsize=9)
    ax.set_xlabel("key j" + ("  (heads left to right)" if arr.ndim == 3 else ""))
    ax.set_ylabel("query i")
    return fig


def block_grid(num: np.ndarray, idx: np.ndarray, full_num: np.ndarray, full_idx: np.ndarray,
               cols: int, max_side: int = _MAX_SIDE) -> np.ndarray:
    """The EMPTY / PARTIAL / FULL class of every block of one head group, downsampled so that the
    longer side has at most ``max_side`` pixels (a pixel shows the heaviest class it covers).

    Works from the BCSR lists alone: the cost is proportional to the listed blocks, not to
    ``rows * cols``."""
    rows = num.shape[0]
    f = max(1, math.ceil(max(rows, cols, 1) / max_side))
    img = np.zeros((-(-rows // f), -(-max(cols, 1) // f)), dtype=np.uint8)
    for n_, ix, cls in ((num, idx, 1), (full_num, full_idx, 2)):
        width = ix.shape[1] if ix.ndim == 2 else 0
        listed = np.arange(width)[None, :] < np.asarray(n_)[:, None]
        r, k = np.nonzero(listed)
        np.maximum.at(img, (r // f, np.asarray(ix)[r, k] // f), np.uint8(cls))
    return img


def block_layout_figure(plan: Any, title: str = "", max_groups: int = 4) -> Figure:
    """The block layout of a Plan (its forward tables), one panel per head group."""
    fw = plan.forward
    tabs = [np.asarray(t.cpu()) for t in (fw.num, fw.idx, fw.full_num, fw.full_idx)]
    groups = min(int(tabs[0].shape[0]), max_groups)
    fig = Figure(figsize=(2.2 + 3.4 * groups, 4.0))
    axes = fig.subplots(1, groups, squeeze=False)[0]
    for g, ax in enumerate(axes):
        num, idx, full_num, full_idx = (t[g] for t in tabs)
        img = block_grid(num, idx, full_num, full_idx, cols=plan.num_k_blocks)
        rows, cols = num.shape[0], plan.num_k_blocks
        f = max(1, math.ceil(max(rows, cols, 1) / _MAX_SIDE))  # blocks per pixel, as block_grid chose
        ax.imshow(img, cmap=_BLOCK_COLORS, vmin=0, vmax=2, interpolation="nearest", aspect="equal",
                  extent=(0, img.shape[1] * f, img.shape[0] * f, 0))
        # a margin, so that blocks on the first row / column (global tokens) are not hidden by the frame
        pad = 0.5 + 0.015 * max(rows, cols)
        ax.set_xlim(-pad, cols + pad)
        ax.set_ylim(rows + pad, -pad)
        ax.set_xlabel("key block")
        ax.set_ylabel("query block" if g == 0 else "")
        if tabs[0].shape[0] > 1:
            ax.set_title(f"head group {g}", fontsize=9)
    stats = getattr(plan, "stats", {}) or {}
    dens = f", block density {stats['block_density']:.3g}" if "block_density" in stats else ""
    fig.suptitle(title or f"blocks of {plan.block_q}x{plan.block_k} at nq={plan.nq}, nk={plan.nk}{dens}",
                 fontsize=9)
    fig.legend(handles=[Patch(facecolor=c, edgecolor="#888888", label=name)
                        for c, name in zip(_BLOCK_HEX, _BLOCK_NAMES)],
               loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    return fig


def degree_histogram_figure(mask: Any, title: str = "") -> Figure:
    """Histogram of keys per query row (all heads pooled)."""
    arr = _as_numpy(mask)
    deg = arr.sum(axis=-1).reshape(-1)
    fig = Figure(figsize=(4.2, 3.2))
    ax = fig.add_subplot()
    top = int(deg.max()) if deg.size else 0
    # log counts: a few global rows next to thousands of local ones stay visible
    ax.hist(deg, bins=min(50, top + 1), range=(-0.5, top + 0.5), color="#1f3b73", log=True)
    ax.set_ylim(bottom=0.5)  # a bin holding one row stays visible
    ax.yaxis.set_major_formatter(FuncFormatter(_short))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("keys per query row")
    ax.set_ylabel("rows (log)")
    ax.set_title(title or f"row degrees at nk={arr.shape[-1]} (mean {deg.mean():.1f})" if deg.size else "",
                 fontsize=9)
    return fig


def cost_figure(ns: Sequence[int], series: Mapping[str, Mapping[str, Sequence[float]]],
                dense: Mapping[str, Sequence[float]] | None = None, title: str = "") -> Figure:
    """nnz, FLOPs and block density versus ``n`` on log axes, one line per pattern.

    ``series[label]`` maps ``"nnz"``, ``"flops"``, ``"block_density"`` to values at ``ns``;
    ``dense`` (same keys) is drawn dashed as the dense-attention baseline."""
    panels = [("nnz", "attended pairs (nnz)"), ("flops", "forward FLOPs"), ("block_density", "block density")]
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3, gridspec_kw={"wspace": 0.3})
    for ax, (key, label) in zip(axes, panels):
        for name, values in series.items():
            ax.plot(ns, values[key], marker="o", ms=3, label=name)
        if dense is not None:
            ax.plot(ns, dense[key], ls="--", color="#555555", label="dense")
        _log_axes(ax)
        ax.set_title(label, fontsize=9)
    if len(series) > 2:  # many patterns: one legend beside the panels, off the data
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.91, 0.5), fontsize=8, frameon=False)
    else:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _short(x: float, _pos: object = None) -> str:
    """Plain-text tick labels (``4k``, ``1M``, ``1e-3``): no mathtext, which is slow to lay out."""
    if x >= 1:
        for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if x >= scale:
                return f"{x / scale:.3g}{unit}" if x < 1e15 else f"{x:.0e}"
        return f"{x:.3g}"
    return f"{x:.0e}".replace("e-0", "e-")


def _tokens(x: float, _pos: object = None) -> str:
    """Token counts in binary units: 4096 -> ``4k``, 1048576 -> ``1M``."""
    for unit, scale in (("M", 1 << 20), ("k", 1 << 10)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _log_axes(ax: Any) -> None:
    # no minor ticks and plain labels: mathtext and minor tick objects cost most of the drawing time
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.yaxis.set_major_formatter(FuncFormatter(_short))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_locator(NullLocator())
    ax.set_xlabel("n (tokens)")
    ax.grid(True, which="major", alpha=0.3)


def timing_figure(records: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Measured milliseconds versus ``n``: one colour per system, solid forward, dotted backward
    (``records``: dicts with ``n``, ``system``, ``direction``, ``ms`` and optionally ``date``; of
    several records for one point the newest is drawn)."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    lines: dict[tuple[str, str], dict[int, float]] = {}
    for r in sorted(records, key=lambda r: str(r.get("date", ""))):
        lines.setdefault((str(r["system"]), str(r["direction"])), {})[int(r["n"])] = float(r["ms"])
    systems = sorted({s for s, _ in lines}, key=lambda s: (s != "patternc", s))
    colors = {s: f"C{i}" for i, s in enumerate(systems)}
    for (system, direction), pts in sorted(lines.items(), key=lambda kv: (systems.index(kv[0][0]), kv[0][1])):
        ns = sorted(pts)
        ax.plot(ns, [pts[n] for n in ns], marker="o", ms=3, color=colors[system],
                label=f"{system} {direction}", ls=":" if direction == "bwd" else "-")
    _log_axes(ax)
    ax.set_ylabel("ms (median)")
    ax.legend(fontsize=7)
    ax.set_title(title or "measured time", fontsize=9)
    return fig
