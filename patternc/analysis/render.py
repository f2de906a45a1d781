"""Text table of reports for ``patternc report`` (rich)."""

from __future__ import annotations

from io import StringIO

from rich import box
from rich.console import Console
from rich.table import Table

from patternc.analysis.report import GroupReport, Report

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
    text = f"{rf:,}" if isinstance(rf, int) else str(rf)
    if rep.is_exact("receptive_field"):
        return text
    if rep.receptive_upper is not None:
        return f"{rf or 1}..{rep.receptive_upper}"
    return "?" if rf is None else f"{_LOWER} {text}"


def _row(label: str, rep: Report) -> list[str]:
    heads = f" ({rep.heads} heads)" if rep.heads > 1 else ""
    return [
        label + heads,
        f"{rep.n:,}" if rep.nq == rep.nk else f"{rep.nq:,}x{rep.nk:,}",
        _mark(rep, "nnz", f"{rep.nnz:,}"),
        _mark(rep, "density", _percent(rep.density)),
        _mark(rep, "flops", _si(rep.flops)),
        _class(rep),
        _mark(rep, "min_keys", f"{rep.min_keys:,}"),
        _mark(rep, "mean_keys", f"{rep.mean_keys:,.1f}"),
        _mark(rep, "max_keys", f"{rep.max_keys:,}"),
        _mark(rep, "empty_rows", f"{rep.empty_rows:,}"),
        "?" if rep.block_density is None else _percent(rep.block_density),
        _receptive(rep),
    ]


def _group_row(g: GroupReport) -> list[str]:
    return [f"  heads {_span(g.heads)}: {g.pattern}", "", f"{g.nnz:,}/head", _percent(g.density),
            f"{_si(g.flops)}/head", _theta(g.complexity, g.complexity_tight), f"{g.min_keys:,}",
            f"{g.mean_keys:,.1f}", f"{g.max_keys:,}", f"{g.empty_rows:,}",
            "?" if g.block_density is None else _percent(g.block_density), ""]


def _percent(x: float) -> str:
    if x == 0:
        return "0%"
    return "100%" if x >= 0.99995 else f"{x:.4%}" if x >= 0.0001 else f"{x:.2e}"


COLUMNS = ("pattern", "n", "nnz", "density", "fwd FLOP", "nnz class", "min keys", "mean keys", "max keys",
           "empty rows", "block density", "receptive field")


def render_reports(rows: list[tuple[str, Report]], width: int = 200) -> str:
    """A text table, one line per ``(label, report)`` (plus one per head group when heads differ),
    with a legend for units and for the exact / bound markers."""
    table = Table(box=box.SIMPLE_HEAVY, show_edge=False, pad_edge=False)
    for name in COLUMNS:
        if name == "pattern":
            table.add_column(name, justify="left", max_width=48, overflow="fold")
        else:
            table.add_column(name, justify="left" if name == "nnz class" else "right", no_wrap=True)
    for label, rep in rows:
        table.add_row(*_row(label, rep))
        if len(rep.groups) > 1:
            for g in rep.groups:
                table.add_row(*_group_row(g))
    out = StringIO()
    console = Console(file=out, width=width, record=True, color_system=None, highlight=False)
    console.print(table)
    console.print(_legend(rows), soft_wrap=True)
    return out.getvalue()


def _legend(rows: list[tuple[str, Report]]) -> str:
    dims = sorted({r.head_dim for _, r in rows}) or [64]
    blocks = sorted({r.block for _, r in rows}) or [128]
    return (f"keys per query row; fwd FLOP = 4·nnz·D per batch element, summed over heads (D = "
            f"{', '.join(map(str, dims))}); block density: non-empty {'/'.join(map(str, blocks))}-blocks "
            f"(B={'/'.join(map(str, blocks))}) over all blocks; receptive field: stacked layers (with the "
            "residual) until every query depends on every key it can reach (causal: every earlier key).\n"
            "Θ: tight class, O: upper bound only; <= upper bound, >= lower bound, a..b between; "
            "every unmarked figure is exact.")


def _span(heads: tuple[int, ...]) -> str:
    if len(heads) > 1 and heads == tuple(range(heads[0], heads[-1] + 1)):
        return f"{heads[0]}-{heads[-1]}"
    return ",".join(map(str, heads))
