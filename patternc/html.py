"""``patternc report --html``: one self-contained HTML page about one or more patterns.

Per pattern: its ``.sap`` text, a table of the SPEC section 4 report at every ``n``, the mask
picture at a small ``n``, the block layout at the largest ``n`` (from the lowered Plan's tables,
never an ``n x n`` array), nnz / FLOPs / block density versus ``n`` on log axes beside dense
attention, the per-row degree histogram and, where a GPU run has been recorded under
``benchmarks/``, the measured times. Images are embedded as base64 PNG, so the page is a single
file that opens anywhere.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from patternc import ir, plots

MASK_N = 1024  # the mask picture and degree histogram use min(max(ns), MASK_N) tokens
HEAD_DIM = 64
_TIMINGS_GLOB = "benchmarks/**/*.json"
_TIMING_KEYS = frozenset({"pattern", "n", "system", "direction", "ms"})
# timing columns of benchmark rows: ours_ms, flex_bwd_ms, sdpa_cudnn_causal_ms, ...
_MS_COLUMN = re.compile(r"^(?P<system>ours|flex|sdpa_[a-z0-9_]+?)(?:_(?P<dir>fwd|bwd))?_ms$")

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1.5em; max-width: 1280px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-top: 1px solid #ccc; padding-top: 1em; }
pre { background: #f5f5f5; padding: .6em; overflow-x: auto; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #eee; } td.l, th.l { text-align: left; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: .8em; color: #555; max-width: 40em; }
img { max-width: 100%; }
"""

# (key of Report.to_dict(), column title, format)
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("n", "n", "{:,}"),
    ("nnz", "nnz", "{:,}"),
    ("density", "density", "{:.4g}"),
    ("flops", "fwd FLOPs", "{:.3g}"),
    ("min_keys", "min keys", "{:,}"),
    ("mean_keys", "mean keys", "{:,.1f}"),
    ("max_keys", "max keys", "{:,}"),
    ("empty_rows", "empty rows", "{:,}"),
    ("block_density", "block density", "{:.4g}"),
    ("receptive_field", "receptive field", "{}"),
    ("complexity", "nnz class", "{}"),
)


@dataclass(frozen=True)
class Section:
    """Everything the page shows about one pattern."""

    label: str
    sap: str
    rows: tuple[dict[str, Any], ...]
    images: tuple[tuple[str, bytes], ...]  # (caption, PNG)


def write_html(path: str | Path, items: Sequence[tuple[str, ir.Node]], ns: Sequence[int], block: int = 128,
               *, mask_n: int | None = None, head_dim: int = HEAD_DIM,
               timings: Iterable[dict[str, Any]] | None = None, title: str = "patternc report",
               console: Console | None = None) -> Path:
    """Write the report page for ``items`` (``(label, pattern)`` pairs) at key lengths ``ns``.

    ``timings``: measured records (see :func:`load_timings`); by default those recorded under
    ``benchmarks/`` in the current directory. Returns the path written."""
    ns = sorted(set(int(n) for n in ns))
    if not ns or ns[0] < 1:
        raise ValueError("report needs at least one n >= 1")
    small = mask_n if mask_n is not None else min(ns[-1], MASK_N)
    records = list(load_timings() if timings is None else timings)
    console = console or Console(stderr=True)
    sections = []
    with _progress(console) as progress:
        task = progress.add_task("report", total=len(items) * (len(ns) + 2))
        for label, node in items:
            progress.update(task, description=f"{label}")
            sections.append(_section(label, node, ns, block, small, head_dim, records, progress, task))
    overview = _overview_png(sections, ns, head_dim)
    out = Path(path)
    out.write_text(_page(title, sections, ns, block, overview), encoding="utf-8")
    return out


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def _heads(node: ir.Node) -> int | None:
    g = ir.head_counts(node)
    return g if g > 1 else None


def _section(label: str, node: ir.Node, ns: list[int], block: int, small: int, head_dim: int,
             records: list[dict[str, Any]], progress: Progress, task: Any) -> Section:
    from patternc.analysis import report
    from patternc.lower import lower

    heads = _heads(node)
    rows = []
    for n in ns:
        rep = report(node, n, block=block, heads=heads, head_dim=head_dim)
        rows.append(_row(n, rep.to_dict()))
        progress.advance(task)
    mask = node.mask(small, heads=heads)
    plan = lower(node, ns[-1], ns[-1], block_q=block, block_k=block, heads=heads)
    progress.advance(task)
    images = [
        (f"Mask at n = {small:,} (dark: the query attends to the key).", plots.mask_figure(mask)),
        (f"Block layout at n = {ns[-1]:,}, {block}x{block} blocks: what a block-sparse kernel visits "
         f"(full blocks skip the predicate). {_plan_summary(plan.stats)}", plots.block_layout_figure(plan)),
        (f"Keys per query row at n = {small:,}.", plots.degree_histogram_figure(mask)),
        ("Cost versus n (log axes) beside dense attention; FLOPs are the forward 4 nnz D "
         f"per head, D = {head_dim}.", plots.cost_figure(ns, {label: _series(rows)}, _dense(ns, head_dim))),
    ]
    # dense SDPA: cuDNN only (the faster backend on H100), to keep the plot readable
    mine = [r for r in records if _canonical(str(r["pattern"])) == node.sap()
            and not str(r["system"]).startswith("sdpa flash")]
    if mine:
        devices = sorted({str(r.get("device", "?")) for r in mine})
        images.append((f"Measured on {', '.join(devices)} (median ms; recorded under benchmarks/).",
                       plots.timing_figure(mine)))
    progress.advance(task)
    return Section(label, node.sap(), tuple(rows), tuple((cap, _png(fig)) for cap, fig in images))


def _plan_summary(stats: dict[str, Any]) -> str:
    names = (("full_blocks", "full blocks"), ("partial_blocks", "partial blocks"),
             ("heaviest_row", "heaviest query-block row (blocks)"),
             ("heaviest_col", "heaviest key-block column"))
    parts = [f"{label} {stats[key]:,}" for key, label in names if isinstance(stats.get(key), int)]
    return "; ".join(parts) + "." if parts else ""


def _row(n: int, d: dict[str, Any]) -> dict[str, Any]:
    out = {key: d.get(key) for key, _, _ in _COLUMNS}
    out["n"] = n
    if d.get("complexity_tight") and isinstance(out["complexity"], str):
        out["complexity"] = out["complexity"].replace("O(", "Θ(", 1)  # the class is proven tight
    return out


def _series(rows: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    return {k: [float(r[k]) for r in rows] for k in ("nnz", "flops", "block_density")}


def _dense(ns: Sequence[int], head_dim: int) -> dict[str, list[float]]:
    return {"nnz": [float(n * n) for n in ns], "flops": [4.0 * n * n * head_dim for n in ns],
            "block_density": [1.0 for _ in ns]}


def _png(fig: Figure) -> bytes:
    return plots.figure_png(fig, dpi=90)


def _overview_png(sections: Sequence[Section], ns: list[int], head_dim: int) -> bytes | None:
    if len(sections) < 2:
        return None
    fig = plots.cost_figure(ns, {s.label: _series(s.rows) for s in sections}, _dense(ns, head_dim))
    return _png(fig)


def load_timings(root: str | Path = ".") -> list[dict[str, Any]]:
    """Measured records from the JSON files under ``root/benchmarks/``.

    A record is a dict with ``pattern`` (``.sap`` text, compared in canonical form), ``n``,
    ``system``, ``direction`` (``fwd`` / ``bwd``), ``ms`` and optionally ``device`` and ``date``
    (the newest record of a point is drawn). Files hold a
    list of records, or ``{"records": [...]}``, or a benchmark's ``{"meta": {...}, "rows": [...]}``
    whose rows have ``pattern``, ``N`` and ``<system>[_bwd]_ms`` columns (``ours``, ``flex``,
    ``sdpa_<backend>``), as ``benchmarks/bench_*.py`` write them. Unreadable files are skipped:
    recorded runs decorate the page, they never stop it."""
    out: list[dict[str, Any]] = []
    for f in sorted(Path(root).glob(_TIMINGS_GLOB)):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out += _records(data)
    return out


def _records(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        meta = data["meta"] if isinstance(data.get("meta"), dict) else {}
        return [rec for row in data["rows"] if isinstance(row, dict) for rec in _from_row(row, meta)]
    if isinstance(data, dict):
        data = data.get("records", [data])
    if not isinstance(data, list):
        return []
    return [r for r in data if isinstance(r, dict) and set(r) >= _TIMING_KEYS]


def _from_row(row: dict[str, Any], meta: dict[str, Any]) -> list[dict[str, Any]]:
    n = row.get("N", row.get("n"))
    if not isinstance(row.get("pattern"), str) or not isinstance(n, int):
        return []
    device = str(meta.get("gpu", meta.get("device", "GPU")))
    recs = []
    for key, value in row.items():
        m = _MS_COLUMN.match(key)
        if m and isinstance(value, (int, float)):
            system = "patternc" if m["system"] == "ours" else m["system"].replace("_", " ")
            recs.append({"pattern": row["pattern"], "n": n, "system": system, "direction": m["dir"] or "fwd",
                         "ms": float(value), "device": device, "date": str(meta.get("date", ""))})
    return recs


@functools.lru_cache(maxsize=1024)
def _canonical(text: str) -> str | None:
    from patternc.frontend import pattern

    try:
        return pattern(text).sap()
    except Exception:  # a label that is not a pattern: not ours to match
        return None


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in _COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r[k], fmt))}</td>" for k, _, fmt in _COLUMNS)
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, sections: Sequence[Section], ns: list[int], block: int, overview: bytes | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{len(sections)} pattern(s); n = {', '.join(f'{n:,}' for n in ns)}; block {block}; "
             f"written {stamp}. Counts are exact (computed analytically, no n x n array).</p>"]
    if overview is not None:
        parts.append(f"<figure>{_img(overview, 'cost of all patterns')}"
                     "<figcaption>Cost versus n of every pattern on this page.</figcaption></figure>")
    for s in sections:
        parts.append(f"<h2>{html.escape(s.label)}</h2><pre>{html.escape(s.sap)}</pre>{_table(s.rows)}")
        figs = "".join(f"<figure>{_img(png, cap)}<figcaption>{html.escape(cap)}</figcaption></figure>"
                       for cap, png in s.images)
        parts.append(f"<div class='figs'>{figs}</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
