"""``make run``: the main job, end to end on the standard library.

For every ``stdlib_patterns/*.sap`` file: check it, report its exported patterns, compile it with
``patternc compile`` into ``out/compiled/``, import the compiled module, run every function
forward and backward on random inputs, and compare with the dense reference. On a CUDA GPU it
runs bf16 at 4,096 tokens; without one, float32 at 96 tokens on Triton's interpreter.
Exit status 1 if any file fails to check or any kernel disagrees with the reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from rich.console import Console
from rich.progress import track
from rich.table import Table

import patternc
from patternc import reference
from patternc.analysis import render_reports
from patternc.compiler import compile_file

STDLIB = Path(patternc.__file__).parent / "stdlib_patterns"


@dataclass(frozen=True)
class Problem:
    """The shapes one kernel check runs at."""

    device: str
    dtype: torch.dtype
    n: int
    batch: int = 1
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64

    @staticmethod
    def for_machine() -> Problem:
        if torch.cuda.is_available():
            return Problem("cuda", torch.bfloat16, 4096)
        return Problem("cpu", torch.float32, 96, head_dim=32)

    @property
    def tolerance(self) -> float:
        return 5e-2 if self.dtype == torch.bfloat16 else 1e-3


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_kernel(fn, node: patternc.Node, pb: Problem) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Relative error of the output and of the gradients against the reference, and seconds taken."""
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(h: int) -> torch.Tensor:
        x = torch.randn(pb.batch, h, pb.n, pb.head_dim, generator=g)
        return x.to(pb.device, pb.dtype).requires_grad_()

    q, k, v = rand(pb.heads), rand(pb.kv_heads), rand(pb.kv_heads)
    do = torch.randn(q.shape, generator=g).to(pb.device, pb.dtype)
    t0 = time.perf_counter()
    out = fn(q, k, v)
    grads = torch.autograd.grad(out, (q, k, v), do)
    if pb.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    qf, kf, vf = (x.detach().float().requires_grad_() for x in (q, k, v))
    ref = reference.attention(qf, kf, vf, node)
    ref_grads = torch.autograd.grad(ref, (qf, kf, vf), do.float())
    return _rel_err(out, ref), max(_rel_err(a, b) for a, b in zip(grads, ref_grads)), seconds


def _rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Max abs error over the largest reference magnitude (at least 1): a gradient that sums
    thousands of rows (a global key's dV) is large, and bf16 rounds it in proportion."""
    return ((x.float() - ref).abs().max() / ref.abs().max().clamp_min(1.0)).item()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m patternc.mainjob", description=__doc__)
    ap.add_argument("--out", default="out", help="where compiled modules go (default: out/)")
    ap.add_argument("--n", default="4096,65536", help="report sizes (default: 4096,65536)")
    args = ap.parse_args(argv)
    console = Console()
    pb = Problem.for_machine()
    console.print(f"[bold]patternc main job[/bold]: stdlib at {STDLIB}; kernels on {pb.device} "
                  f"({'GPU' if pb.device == 'cuda' else 'Triton interpreter'}), {pb.dtype}, n={pb.n}")
    files = sorted(STDLIB.glob("*.sap"))
    programs: dict[Path, patternc.frontend.Program] = {}
    failures = 0
    for path in files:  # 1. check
        try:
            programs[path] = patternc.load(path)
        except patternc.SapError as e:
            console.print(str(e), style="red")
            failures += 1
    ns = [int(x) for x in args.n.split(",")]
    rows = [(f"{p.stem}:{name} n={n}", node.report(n, heads=pb.heads))  # 2. report
            for p, prog in programs.items() for name, node in prog.exported.items() for n in ns]
    print(render_reports(rows))  # already laid out by rich: no re-wrapping at 80 columns
    outdir = Path(args.out) / "compiled"  # 3. compile and 4. run against the reference
    results = Table(title=f"compiled stdlib kernels vs the reference ({pb.device}, {pb.dtype}, n={pb.n})")
    for col in ("pattern", "out error", "grad error", "seconds", "ok"):
        results.add_column(col)
    jobs = [(p, name) for p, prog in programs.items() for name in prog.exported]
    modules = {p: load_module(compile_file(p, outdir)[0]) for p in programs}
    for path, name in track(jobs, description="running compiled kernels", console=console):
        module = modules[path]
        fn = getattr(module, patternc.compiler.function_name(name))
        err, gerr, secs = check_kernel(fn, module.PATTERNS[name], pb)
        ok = err <= pb.tolerance and gerr <= pb.tolerance
        failures += not ok
        results.add_row(f"{path.stem}:{name}", f"{err:.2e}", f"{gerr:.2e}", f"{secs:.2f}",
                        "[green]yes[/green]" if ok else "[red]NO[/red]")
    console.print(results)
    console.print(f"modules written to {outdir}/; " + ("[green]all good[/green]" if not failures
                                                        else f"[red]{failures} failure(s)[/red]"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
