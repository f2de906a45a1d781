"""The ``patternc`` command: ``check``, ``report``, ``mask`` and ``compile`` (SPEC section 4).

Exit codes: 0 success, 1 the input is wrong (diagnostics on stderr), 2 the command line is
wrong, 3 an internal error (a bug in patternc: a one-line message, the traceback only with
``PATTERNC_DEBUG=1``). Bad input never shows a Python traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patternc import ir
from patternc.diagnostics import Diagnostic, SapError, render

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
CHECK_N = 4096  # the key length at which `check` looks for empty rows
MAX_MASK_ELEMENTS = 1 << 30  # `mask` refuses to build more booleans than this


class UsageError(Exception):
    """The command line is wrong (exit 2)."""


class InputError(Exception):
    """The input is wrong in a way that has no source location (exit 1)."""


# --------------------------------------------------------------------------- argument parsing


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _lengths(text: str) -> list[int]:
    try:
        ns = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not ns or min(ns) < 1:
        raise argparse.ArgumentTypeError(f"lengths must be >= 1, got {text!r}")
    return ns


def _positive(text: str) -> int:
    try:
        v = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="a .sap file")
    p.add_argument("-e", "--expr", help="a pattern expression instead of a file: 'band(256) | global([0])'")
    p.add_argument("--pattern", help="which exported pattern of FILE (needed when it exports several); "
                   "may also be an expression over the file's names, e.g. 'longformer(w=128)'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="patternc", description="A compiler for sparse attention patterns (.sap files).")
    from patternc import __version__

    parser.add_argument("--version", action="version", version=f"patternc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("check", help="check .sap files; print diagnostics")
    p.add_argument("files", nargs="+", metavar="FILE", help="one or more .sap files")
    p.add_argument("--n", type=_positive, default=CHECK_N,
                   help=f"key length at which to look for empty query rows (default {CHECK_N})")

    p = sub.add_parser("report", help="nnz, density, FLOPs, complexity, block density, receptive field")
    _source_args(p)
    p.add_argument("--n", type=_lengths, required=True, help="key length(s), comma separated: 4096,65536")
    p.add_argument("--block", type=_positive, default=128, help="block size for the block density (128)")
    p.add_argument("--heads", type=_positive, help="number of heads (patterns with heads(...))")
    p.add_argument("--head-dim", type=_positive, default=64, help="head dimension D for the FLOP count (64)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON document")
    out.add_argument("--html", metavar="OUT", help="write an HTML page with pictures and plots")

    p = sub.add_parser("mask", help="write the boolean mask as .npy or .png")
    _source_args(p)
    p.add_argument("--n", type=_positive, required=True, help="number of queries nq")
    p.add_argument("--nk", type=_positive, help="number of keys (default: N)")
    p.add_argument("--heads", type=_positive, help="number of heads: the mask is [H, nq, nk]")
    p.add_argument("-o", "--output", required=True, help="OUT.npy or OUT.png")

    p = sub.add_parser("compile", help="write one importable Python module per .sap file")
    p.add_argument("file", help="a .sap file")
    p.add_argument("-o", "--outdir", default=".", help="output directory (default: .)")
    return parser


# --------------------------------------------------------------------------- choosing patterns


def _selected(args: argparse.Namespace, many: bool) -> list[tuple[str, ir.Node]]:
    """``(label, pattern)`` pairs from ``-e`` or FILE [--pattern]; all exported ones if ``many``."""
    from patternc.frontend import load, pattern

    if (args.file is None) == (args.expr is None):
        raise UsageError(f"patternc {args.command}: give either FILE or -e EXPR")
    if args.expr is not None:
        if args.pattern:
            raise UsageError(f"patternc {args.command}: --pattern goes with FILE, not with -e")
        return [(args.expr, pattern(args.expr))]
    prog = load(args.file)
    exported = prog.exported
    if args.pattern:
        if args.pattern.isidentifier() and args.pattern not in prog:
            names = ", ".join(prog.patterns) or "none"
            raise UsageError(f"{args.file} defines no pattern '{args.pattern}' (its patterns: {names})")
        if args.pattern.isidentifier() and args.pattern in exported:
            return [(args.pattern, exported[args.pattern])]
        return [(args.pattern, prog.expression(args.pattern))]
    if not exported:
        needs = [str(p) for p in prog.patterns.values()]
        detail = f"; its patterns need arguments: {', '.join(needs)} (use --pattern 'name(...)')"
        detail = detail if needs else ""
        raise InputError(f"{args.file} exports no pattern{detail}")
    if len(exported) > 1 and not many:
        raise UsageError(f"{args.file} exports {len(exported)} patterns; choose one with --pattern NAME: "
                         + ", ".join(exported))
    return list(exported.items())


def _color() -> bool:
    """Colors on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _heads_for(node: ir.Node, heads: int | None) -> int | None:
    """The head count to use: the one given, else the least that ``heads(...)`` in ``node`` allows."""
    if heads is not None:
        ir.check_heads(node, heads)
        return heads
    g = ir.head_counts(node)
    return g if g > 1 else None


# --------------------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    from patternc.frontend import load

    code = EXIT_OK
    for file in args.files:
        try:
            prog = load(file)
        except SapError as e:
            print(render(e.diagnostics, color=_color()), file=sys.stderr)
            code = EXIT_INPUT
            continue
        warnings = list(prog.diagnostics) + _warnings(prog, args.n)
        if warnings:
            print(render(warnings, color=_color()), file=sys.stderr)
        exported = ", ".join(prog.exported) or "none"
        print(f"{file}: ok, {len(prog.patterns)} pattern(s), exported: {exported}")
    return code


def _warnings(prog: Any, n: int) -> list[Diagnostic]:
    """Warnings about exported patterns at key length ``n``: arguments out of range, empty rows."""
    from patternc.analysis import keys_per_row

    out = []
    for name, node in prog.exported.items():
        span = prog.name_span(name)
        try:
            ir.check_arguments(ir.concretize(node, n))
        except ir.PatternError as e:
            out.append(Diagnostic.at(prog.source, span, "SAP601", f"pattern '{name}' at n={n}: {e}",
                                     severity="warning"))
            continue
        try:
            # the cheap exact per-row counts, not the whole report (block density, receptive field)
            empty = int((keys_per_row(node, n, heads=_heads_for(node, None)) == 0).sum())
        except ir.PatternError as e:
            out.append(Diagnostic.at(prog.source, span, "SAP601", f"pattern '{name}' at n={n}: {e}",
                                     severity="warning"))
            continue
        if empty:
            out.append(Diagnostic.at(
                prog.source, span, "SAP602",
                f"pattern '{name}' has {empty} query row(s) with no keys at n={n}",
                "such rows give 0 in attention; if that is not intended, union with a pattern that covers "
                "every row, e.g. | band(0)", severity="warning"))
    return out


def cmd_report(args: argparse.Namespace) -> int:
    from patternc.analysis import render_reports, report

    items = _selected(args, many=True)
    if args.html:
        from patternc.html import write_html

        path = write_html(args.html, items, args.n, args.block, head_dim=args.head_dim)
        print(f"wrote {path}")
        return EXIT_OK
    rows = []
    for label, node in items:
        heads = _heads_for(node, args.heads)
        for n in args.n:
            rep = report(node, n, block=args.block, heads=heads, head_dim=args.head_dim)
            rows.append((label, node, n, rep))
    if args.json:
        doc = {"block": args.block, "head_dim": args.head_dim, "reports": [
            {"label": label, "pattern": node.sap(), "n": n, **rep.to_dict()} for label, node, n, rep in rows]}
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(render_reports([(label, rep) for label, _, _, rep in rows]))
    return EXIT_OK


def cmd_mask(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix not in (".npy", ".png"):
        raise UsageError(f"patternc mask: -o must end in .npy or .png, got {args.output!r}")
    [(_, node)] = _selected(args, many=False)
    nq, nk = args.n, args.nk or args.n
    if ir.head_counts(node) > 1 and args.heads is None:
        raise UsageError(f"patternc mask: the pattern has heads(...); give the number of heads with --heads "
                         f"(a multiple of {ir.head_counts(node)})")
    if nq * nk * (args.heads or 1) > MAX_MASK_ELEMENTS:
        raise UsageError(f"patternc mask: a {nq} x {nk} mask is too large to write; "
                         "use `patternc report` for large n")
    mask = node.mask(nq, nk=nk, heads=args.heads)
    if out.suffix == ".npy":
        import numpy as np

        np.save(out, mask.cpu().numpy())
    else:
        from patternc.plots import save_mask_png

        save_mask_png(mask, out)
    print(f"wrote {out} ({'x'.join(str(s) for s in mask.shape)})")
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    from patternc.compiler import compile_file

    for path in compile_file(Path(args.file), Path(args.outdir)):
        print(f"wrote {path}")
    return EXIT_OK


COMMANDS = {"check": cmd_check, "report": cmd_report, "mask": cmd_mask, "compile": cmd_compile}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else EXIT_OK
    except UsageError as e:
        print(f"{e}\n(see patternc --help)", file=sys.stderr)
        return EXIT_USAGE
    except SapError as e:
        print(render(e.diagnostics, color=_color()), file=sys.stderr)
        return EXIT_INPUT
    except (InputError, ir.PatternError) as e:
        print(f"patternc: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # `patternc report ... | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that the exit does not fail again
        return EXIT_OK
    except OSError as e:
        print(f"patternc: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug in patternc, not in the input: still no traceback by default
        if os.environ.get("PATTERNC_DEBUG"):
            traceback.print_exc()
        where = "" if not isinstance(e, ImportError) else " (a part of patternc is missing)"
        print(f"patternc: internal error{where}: {type(e).__name__}: {e}\n"
              "set PATTERNC_DEBUG=1 to see the traceback", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
