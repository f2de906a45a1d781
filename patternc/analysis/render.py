"""Text table of reports for ``patternc report`` (rich)."""

from __future__ import annotations

from io import StringIO

from rich import box
from rich.console import Console
from rich.table import Table

from patternc.analysis.report import Report

# figures that are bounds get a marker: "<=" upper bound, ">=" lower bound
_UPPER, _LOWER = "<=", ">="


def _mark(rep: Report, figure: str, text: str) -> str:
    why = rep.bounds.get(figure)
    if why is None:
        return text
    if why.startswith("unknown") or why.startswith("unavailable"):
        return "?"
    return f"{_LOWER if why.startswith('lower') else _UPPER} {text}"


def _si(x: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _theta(text: str, tight: bool) -> str:
    return text.replace("O(", "Θ(", 1) if tight else text


def _class(rep: Report) -> str:
    return _theta(rep.complexity, rep.complexity_tight)


def _receptive(rep: Report) -> str:
    rf = rep.receptive_field
    if rf is None:
        return "?"
    return _mark(rep, "receptive_field", str(rf))


def _row(label: str, rep: Report) -> list[str]:
    keys = f"{rep.min_keys:,} / {rep.mean_keys:,.1f} / {rep.max_keys:,}"
    heads = f" x{rep.heads}h" if rep.heads > 1 else ""
    return [
        label + heads,
        f"{rep.n:,}" if rep.nq == rep.nk else f"{rep.nq:,}x{rep.nk:,}",
        _mark(rep, "nnz", f"{rep.nnz:,}"),
        _mark(rep, "density", f"{rep.density:.4%}" if rep.density < 0.9995 else "100%"),
        _mark(rep, "flops", _si(rep.flops)),
        _class(rep),
        _mark(rep, "mean_keys", keys),
        _mark(rep, "empty_rows", f"{rep.empty_rows:,}"),
        "?" if rep.block_density is None else f"{rep.block_density:.2%}",
        _receptive(rep),
    ]


def render_reports(rows: list[tuple[str, Report]], width: int = 160) -> str:
    """A text table, one line per ``(label, report)`` (plus one per head group when heads differ)."""
    table = Table(box=box.SIMPLE_HEAVY, show_edge=False, pad_edge=False)
    first = rows[0][1] if rows else None
    D = first.head_dim if first else 64
    B = first.block if first else 128
    for name, just in (("pattern", "left"), ("n", "right"), ("nnz (pairs)", "right"), ("density", "right"),
                       (f"fwd FLOP (4·nnz·D, D={D})", "right"), ("nnz class", "left"),
                       ("keys/row min / mean / max", "right"), ("empty rows", "right"),
                       (f"block density (B={B})", "right"), ("receptive field (layers)", "right")):
        table.add_column(name, justify=just)  # type: ignore[arg-type]
    for label, rep in rows:
        table.add_row(*_row(label, rep))
        if len(rep.groups) > 1:
            for g in rep.groups:
                table.add_row(
                    f"  heads {_span(g.heads)}: {g.pattern}", "", f"{g.nnz:,}/head", f"{g.density:.4%}",
                    f"{_si(g.flops)}/head", _theta(g.complexity, g.complexity_tight),
                    f"{g.min_keys:,} / {g.mean_keys:,.1f} / {g.max_keys:,}", f"{g.empty_rows:,}",
                    "?" if g.block_density is None else f"{g.block_density:.2%}", "")
    out = StringIO()
    console = Console(file=out, width=width, record=True, color_system=None, highlight=False)
    console.print(table)
    console.print("Θ: tight class, O: upper bound only; <= / >= mark bounds, every other figure is exact. "
                  "FLOP per batch element, summed over heads.", soft_wrap=True)
    return out.getvalue()


def _span(heads: tuple[int, ...]) -> str:
    if len(heads) > 1 and heads == tuple(range(heads[0], heads[-1] + 1)):
        return f"{heads[0]}-{heads[-1]}"
    return ",".join(map(str, heads))
