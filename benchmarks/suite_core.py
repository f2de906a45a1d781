"""The benchmark suite's pure-Python parts (no GPU): which patterns it runs, the arithmetic of
useful TFLOP/s and ratios, the correctness verdict of a row, and the markdown tables.

``benchmarks/suite.py`` measures; this module decides what to measure and how to print it, so
that ``tests/test_bench_suite.py`` can check it on the CPU.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from patternc import ir

STDLIB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "patternc", "stdlib_patterns")
EXTRAS = ("band(256)", "causal")  # the issue's two plain baselines, besides the stdlib
FWD_TOL = 2e-2  # largest |ours - flex| of a bf16 output still called correct (1 ulp near 1 is 4e-3)
BWD_TOL = 2e-2  # largest |ours - flex| / max |flex| of a bf16 gradient still called correct
TARGET_TFLOPS = {"fwd": 150.0, "bwd": 100.0}  # the issue's floors at 64k tokens, head dim 64
TARGET_AT = (65536, 64)


@dataclass(frozen=True)
class Case:
    """One pattern the suite measures: its name, IR, where it comes from, and other names of the
    same IR (``band(256)`` is the stdlib's ``sliding_window``: measured once)."""

    name: str
    node: ir.Node
    source: str
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return " = ".join((self.name, *self.aliases))

    @property
    def expr(self) -> str:
        return self.node.sap()


def stdlib_cases(directory: str = STDLIB_DIR) -> list[Case]:
    """Every exported pattern of every stdlib file, at its default parameters, in file order."""
    import patternc

    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.sap"))):
        for name, node in patternc.load(path).exported.items():
            out.append(Case(name, node, "stdlib:" + os.path.basename(path)))
    return out


def dedupe(cases: Iterable[Case]) -> list[Case]:
    """One case per distinct IR, in first-seen order; later names become aliases."""
    first: dict[ir.Node, Case] = {}
    for c in cases:
        if c.node in first:
            kept = first[c.node]
            if c.name != kept.name and c.name not in kept.aliases:
                first[c.node] = Case(kept.name, kept.node, kept.source, (*kept.aliases, c.name))
        else:
            first[c.node] = c
    return list(first.values())


def all_cases(which: str = "all") -> list[Case]:
    """``all``: stdlib + ``band(256)``, ``causal`` + anchors (benchmarks/anchors.py), deduplicated;
    ``stdlib`` or ``anchors`` alone."""
    from anchors import PATTERNS

    anchors = [Case(name, node, "anchor") for name, node in PATTERNS.items()]
    if which == "anchors":
        return anchors
    stdlib = stdlib_cases()
    if which == "stdlib":
        return stdlib
    if which != "all":
        raise ValueError(f"unknown pattern set {which!r} (all, stdlib, anchors)")
    import patternc

    extras = [Case(text, patternc.pattern(text), "extra") for text in EXTRAS]
    return dedupe([*stdlib, *extras, *anchors])


def matches(case: Case, token: str) -> bool:
    """``token`` is a substring of the case's name, an alias or its expression."""
    return any(token in s for s in (case.name, *case.aliases, case.expr))


def select(cases: Sequence[Case], only: Sequence[str] | None = None,
           shard: tuple[int, int] | None = None) -> list[Case]:
    """The cases ``--only`` and ``--shard`` keep, in order. A token equal to some case's name or
    alias picks exactly that case (``causal`` is not every ``*_causal``); any other token picks
    the cases it is a substring of. ``shard=(i, k)`` keeps every k-th case from the i-th (1-based)."""
    picked = list(cases)
    if only:
        names = {s for c in cases for s in (c.name, *c.aliases)}
        picked = [c for c in cases if any(
            (t in (c.name, *c.aliases)) if t in names else matches(c, t) for t in only)]
    if shard is not None:
        i, k = shard
        if not 1 <= i <= k:
            raise ValueError(f"shard {i}/{k}: need 1 <= i <= k")
        picked = picked[i - 1::k]
    return picked


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``."""
    i, _, k = text.partition("/")
    try:
        shard = int(i), int(k)
    except ValueError:
        raise ValueError(f"--shard wants I/K, e.g. 2/3, got {text!r}") from None
    if not 1 <= shard[0] <= shard[1]:
        raise ValueError(f"--shard {text}: need 1 <= I <= K")
    return shard


def warm_chunks(cases: Sequence[Case], jobs: int) -> list[list[str]]:
    """The cases' names dealt round-robin to at most ``jobs`` warm-up workers (none empty)."""
    chunks: list[list[str]] = [[] for _ in range(max(0, min(jobs, len(cases))))]
    for i, c in enumerate(cases):
        chunks[i % len(chunks)].append(c.name)
    return chunks


def warm_argv(names: Sequence[str], n: int, d: int, flags: Sequence[str], json_path: str) -> list[str]:
    """A warm-up worker's command line: first calls only, for exactly these names at (n, d).
    Each name is the exact name of one case, so ``--only`` picks exactly it."""
    return ["--warm-only", "--no-dense", "--n", str(n), "--d", str(d), *flags, "--json", json_path,
            "--only", *names]


def useful_tflops(nnz: int, head_dim: int, batch: int, ms: float | None,
                  backward: bool = False) -> float | None:
    """``4 * nnz * D * B / time`` (2.5x that for a backward), in TFLOP/s; ``nnz`` counts every
    (head, query, key) pair the pattern asks for, summed over heads. None without a time."""
    if ms is None or ms <= 0:
        return None
    return (2.5 if backward else 1.0) * 4 * nnz * head_dim * batch / (ms * 1e-3) / 1e12


def speedup(ours_ms: float | None, other_ms: float | None) -> float | None:
    """``other / ours``: above 1 means ours is faster."""
    if ours_ms is None or other_ms is None or ours_ms <= 0:
        return None
    return other_ms / ours_ms


def best(*times: float | None) -> float | None:
    """The fastest of the times that exist."""
    present = [t for t in times if t is not None]
    return min(present) if present else None


def verdict(err: float | None, tol: float) -> str:
    """``ok`` / ``WRONG`` for a measured error, ``unchecked`` when there was nothing to compare."""
    if err is None:
        return "unchecked"
    return "ok" if err <= tol else "WRONG"  # NaN compares False: WRONG


def derive(row: dict[str, Any], batch: int) -> dict[str, Any]:
    """TFLOP/s, ratios and verdicts from a row's raw times and errors (added to a copy)."""
    r = dict(row)
    for p in ("fwd", "bwd"):
        bw = p == "bwd"
        r[f"flex_{p}_best_ms"] = best(r.get(f"flex_{p}_ms"), r.get(f"flex_cbm_{p}_ms"))
        for who in ("ours", "flex"):
            ms = r.get(f"{who}_{p}_ms") if who == "ours" else r[f"flex_{p}_best_ms"]
            r[f"{who}_{p}_tflops"] = useful_tflops(r["nnz"], r["D"], batch, ms, bw) if "nnz" in r else None
        r[f"{p}_vs_flex"] = speedup(r.get(f"ours_{p}_ms"), r[f"flex_{p}_best_ms"])
        r[f"{p}_vs_cudnn"] = speedup(r.get(f"ours_{p}_ms"), r.get(f"cudnn_{p}_ms"))
        err = r.get("fwd_max_abs_err") if p == "fwd" else _max(r.get("bwd_max_rel_err"))
        r[f"{p}_check"] = verdict(err, FWD_TOL if p == "fwd" else BWD_TOL)
    return r


def _max(errs: dict[str, float] | None) -> float | None:
    return max(errs.values()) if errs else None


def cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (pattern unions contain ``|``)."""
    return text.replace("|", "\\|")


def fmt(x: Any, spec: str, missing: str = "-") -> str:
    """``x`` formatted for a table cell, ``missing`` where there is no number."""
    return format(x, spec) if isinstance(x, (int, float)) and x == x else missing


def ratio_cell(ratio: float | None, check: str) -> str:
    """A speed ratio, never shown for a wrong result: a wrong kernel cannot post a fast time."""
    if check == "WRONG":
        return "**WRONG**"
    return fmt(ratio, ".2f") + ("x" if ratio is not None else "") + (" (unchecked)" if check == "unchecked"
                                                                      and ratio is not None else "")


def _failed(r: dict[str, Any], key: str) -> str:
    """``OOM`` / ``err`` when the stage ``key`` recorded an error, else ``-``."""
    e = r.get(f"{key}_error")
    return "-" if not e else ("OOM" if "out of memory" in e.lower() or "OutOfMemory" in e else "err")


def _ms(r: dict[str, Any], key: str, err_key: str) -> str:
    return fmt(r.get(key), ".3f", _failed(r, err_key))


FWD_HEAD = ("| pattern | N | D | density | ours ms | ours TFLOP/s | flex ms (to_flex) | flex ms (cbm) "
            "| flex TFLOP/s | ours vs flex | ours vs cuDNN | max abs err | cbm build ms | plan ms "
            "| first call s (ours / flex / cbm) |\n" + "|---" * 15 + "|\n")
BWD_HEAD = ("| pattern | N | D | ours ms | ours TFLOP/s | flex ms (to_flex) | flex ms (cbm) | flex TFLOP/s "
            "| ours vs flex | ours vs cuDNN | max rel err (dq, dk, dv) | first call s (ours / flex) |\n"
            + "|---" * 12 + "|\n")


def fwd_line(r: dict[str, Any]) -> str:
    """One forward table row (``r`` already :func:`derive`d)."""
    src = r.get("cold") or r  # a warm-up worker's first calls, when there was one: the compiles
    first = "/".join(fmt(src.get(k), ".1f") for k in ("ours_fwd_first_s", "flex_fwd_first_s", "cbm_first_s"))
    return (f"| `{cell(r['label'])}` | {r['N']} | {r['D']} | {fmt(r.get('density'), '.4f')} "
            f"| {_ms(r, 'ours_fwd_ms', 'ours_fwd')} | {fmt(r.get('ours_fwd_tflops'), '.0f')} "
            f"| {_ms(r, 'flex_fwd_ms', 'flex_fwd')} | {_ms(r, 'flex_cbm_fwd_ms', 'cbm')} "
            f"| {fmt(r.get('flex_fwd_tflops'), '.0f')} | {ratio_cell(r.get('fwd_vs_flex'), r['fwd_check'])} "
            f"| {fmt(r.get('fwd_vs_cudnn'), '.1f')} "
            f"| {r['fwd_check']} {fmt(r.get('fwd_max_abs_err'), '.4f', '')} "
            f"| {_ms(r, 'cbm_ms', 'cbm')} | {_ms(r, 'plan_ms', 'plan')} | {first} |")


def bwd_line(r: dict[str, Any]) -> str:
    """One backward table row (``r`` already :func:`derive`d)."""
    errs = r.get("bwd_max_rel_err")
    err = ", ".join(f"{errs[g]:.4f}" for g in ("dq", "dk", "dv")) if errs else ""
    src = r.get("cold") or r
    first = "/".join(fmt(src.get(k), ".1f") for k in ("ours_bwd_first_s", "flex_bwd_first_s"))
    return (f"| `{cell(r['label'])}` | {r['N']} | {r['D']} "
            f"| {_ms(r, 'ours_bwd_ms', 'ours_bwd')} | {fmt(r.get('ours_bwd_tflops'), '.0f')} "
            f"| {_ms(r, 'flex_bwd_ms', 'flex_bwd')} | {_ms(r, 'flex_cbm_bwd_ms', 'cbm_bwd')} "
            f"| {fmt(r.get('flex_bwd_tflops'), '.0f')} | {ratio_cell(r.get('bwd_vs_flex'), r['bwd_check'])} "
            f"| {fmt(r.get('bwd_vs_cudnn'), '.1f')} | {r['bwd_check']} {err} | {first} |")


def dense_table(dense: Sequence[dict[str, Any]], heads: int, batch: int) -> str:
    """Dense SDPA per (N, D, backend, causal): ms and TFLOP/s (all pairs, or the causal half)."""
    lines = ["| N | D | SDPA backend | mask | fwd ms | fwd TFLOP/s | bwd ms | bwd TFLOP/s |",
             "|---|---|---|---|---|---|---|---|"]
    for d in dense:
        n = d["N"]
        nnz = heads * (n * (n + 1) // 2 if d["causal"] else n * n)
        lines.append(
            f"| {n} | {d['D']} | {d['backend']} | {'causal' if d['causal'] else 'full'} "
            f"| {fmt(d.get('fwd_ms'), '.3f', 'err')} "
            f"| {fmt(useful_tflops(nnz, d['D'], batch, d.get('fwd_ms')), '.0f')} "
            f"| {fmt(d.get('bwd_ms'), '.3f')} "
            f"| {fmt(useful_tflops(nnz, d['D'], batch, d.get('bwd_ms'), True), '.0f')} |")
    return "\n".join(lines) + "\n"


def misses(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Rows that miss the issue's targets or fail: wrong results, errors, slower than
    FlexAttention, under the TFLOP/s floors at 64k / D=64 (``rows`` already derived)."""
    out = []
    for r in rows:
        where = f"{r['label']} N={r['N']} D={r['D']}"
        for p in ("fwd", "bwd"):
            if r.get(f"{p}_check") == "WRONG":
                out.append(f"{where} {p}: WRONG result vs FlexAttention")
            if r.get(f"ours_{p}_error"):
                out.append(f"{where} {p}: ours failed: {r[f'ours_{p}_error'][:80]}")
            ratio = r.get(f"{p}_vs_flex")
            if ratio is not None and ratio < 1:
                out.append(f"{where} {p}: {ratio:.2f}x FlexAttention")
            tf = r.get(f"ours_{p}_tflops")
            if (r["N"], r["D"]) == TARGET_AT and tf is not None and tf < TARGET_TFLOPS[p]:
                out.append(f"{where} {p}: {tf:.0f} useful TFLOP/s < {TARGET_TFLOPS[p]:.0f}")
    return out


def markdown(result: dict[str, Any]) -> str:
    """The whole report: header (date, GPU, versions, command), forward, backward and dense
    tables, wall time per slice, and the list of misses."""
    m = result["meta"]
    batch, heads = m["B"], m["H"]
    rows = [derive(r, batch) for r in result["rows"]]
    out = [f"{m['date']}, {m['gpu']}, torch {m['torch']}, triton {m['triton']}, patternc {m['patternc']}"
           f"{', commit ' + m['commit'] if m.get('commit') else ''}; B={batch}, H={heads}, {m['dtype']}; "
           "median ms (triton do_bench); " + commands(m) + "\n"]
    out += ["Forward:\n", FWD_HEAD + "\n".join(fwd_line(r) for r in rows) + "\n"]
    if any("ours_bwd_ms" in r or "ours_bwd_error" in r for r in rows):
        bwd = [bwd_line(r) for r in rows if not r.get("fwd_only")]
        out += ["Backward:\n", BWD_HEAD + "\n".join(bwd) + "\n"]
    if result.get("dense"):
        out += ["Dense SDPA, same process:\n", dense_table(result["dense"], heads, batch)]
    walls = [f"N={s['N']} D={s['D']}: {s['wall_s']:.0f} s ({s['rows']} rows"
             + (f"; warm-up {s['warm_s']:.0f} s)" if s.get("warm_s") else ")") for s in result["slices"]]
    out.append("Wall time per slice (compiles included): " + ", ".join(walls) + "\n")
    if result.get("skipped"):
        out.append("Skipped (deadline): " + ", ".join(result["skipped"]) + "\n")
    miss = misses(rows)
    out.append("Misses: " + ("none" if not miss else "\n" + "\n".join(f"* {x}" for x in miss)) + "\n")
    return "\n".join(out)


def commands(meta: dict[str, Any]) -> str:
    """The command (or, merged, each call's date and command) that produced a result."""
    calls = meta.get("calls") or [dict(date=meta["date"], argv=meta["argv"])]
    return "; ".join(f"`python {' '.join(c['argv'])}`" + (f" ({c['date']})" if len(calls) > 1 else "")
                     for c in calls)


def merge(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several JSON results (one per device call) as one: the first one's meta, every row, dense
    record, slice and skip, and each call's date and command under ``meta['calls']``."""
    if not results:
        raise ValueError("nothing to merge")
    meta = dict(results[0]["meta"])
    meta["calls"] = [dict(date=r["meta"]["date"], argv=r["meta"]["argv"]) for r in results]
    keys = ("rows", "dense", "slices", "skipped")  # every result has them (run() writes them all)
    return dict(meta=meta, **{k: [x for r in results for x in r.get(k, [])] for k in keys})
