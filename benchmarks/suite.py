"""The benchmark suite of issue 6: patternc's kernels vs FlexAttention vs dense SDPA, on one GPU, in
one process, forward and backward, for every stdlib pattern, ``band(256)``, ``causal`` and the
anchor patterns of ``benchmarks/anchors.py``. docs/benchmarks.md explains every column.

    python benchmarks/suite.py                                  # everything: N 4k/16k/64k, D 64/128
    python benchmarks/suite.py --n 4096 --d 64                  # one slice
    python benchmarks/suite.py --n 65536 --d 64 --shard 1/2     # half of its patterns
    python benchmarks/suite.py --only longformer 'band(256)' --fwd-only
    python benchmarks/suite.py --list                           # the selected patterns (no GPU)
    python benchmarks/suite.py --merge a.json b.json --md out.md   # one table from several calls

Per (pattern, N, D), bf16, B=1, H=16, self-attention, random inputs: ``triton.testing.do_bench``
medians of our forward (``patternc.attention``, host work included) and backward
(``torch.autograd.grad`` through our custom op), and of ``torch.compile``d ``flex_attention`` with
the BlockMask of ``patternc.flex.to_flex`` and with one from ``create_block_mask`` on the same
``mask_mod`` (its build time, and whether both list the same blocks); dense SDPA (flash, cuDNN;
full and causal) once per (N, D). Our output and gradients are compared with FlexAttention's: a
row whose result differs shows WRONG instead of a ratio. JSON (after every row) goes to
``--json`` (default ``$OUT/bench_suite_<slice>.json``), the markdown tables to stdout (``--md``).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

if not torch.cuda.is_available():  # --device cpu: Triton's interpreter, chosen before triton loads
    os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite_core import Case, all_cases, markdown, merge, parse_shard, select, warm_argv, warm_chunks

from patternc import ir

B, H = 1, 16
DT = torch.bfloat16
DEVICE = "cuda"  # "cpu" (--device cpu): a smoke test of the plumbing on Triton's interpreter
WARM = False  # --warm-only: first calls (compiles, into the on-disk caches) and no timing
FWD_BENCH = dict(warmup=25, rep=100)  # do_bench's warm-up and repeat budgets, in ms
BWD_BENCH = dict(warmup=10, rep=60)


def bench(fn: Callable[[], Any], warmup: int = 25, rep: int = 100) -> float:
    """Median ms of ``fn`` (``triton.testing.do_bench``: CUDA events, L2 flushed between runs)."""
    if WARM:
        return float("nan")
    if DEVICE != "cuda":  # smoke test: one timed call
        return first_call(fn)[1] * 1e3
    import triton

    return float(triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="median"))


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def first_call(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its wall seconds to completion (compiles, lowering and caches included)."""
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def empty_cache() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:300]


@functools.lru_cache(maxsize=512)
def nnz_heads(node: ir.Node, n: int, heads: int) -> tuple[int, bool]:
    """Exact (head, query, key) pairs summed over ``heads`` (``patternc.analysis.report``), and
    whether the report calls the count exact (not a bound)."""
    from patternc.analysis import report

    rep = report(node, n, heads=heads)
    return int(rep.nnz), "nnz" not in rep.bounds


def nnz_of(node: ir.Node, n: int) -> int:
    """The pattern's exact pair count for one head (``heads(...)`` patterns: their groups)."""
    from patternc.analysis import report

    return int(report(node, n).nnz)


def strategy_of(node: ir.Node, n: int, cfg: Any, heads: int = H) -> str:
    """``residue r=...`` when the default mode runs some branch residue-gathered, else ``blocks``."""
    from patternc.runtime import residue

    dec = residue.decompose(ir.concretize(node, n), n, n, heads, cfg.block_q, cfg.block_k,
                            residue.default_mode())
    return "blocks" if dec is None else "residue r=" + ",".join(str(p.r) for p in dec.parts)


@dataclass(frozen=True)
class Inputs:
    """One slice's random inputs: q/k/v for the forward, grad-requiring views of the same data
    for the backward, and the output gradient."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    qg: torch.Tensor
    kg: torch.Tensor
    vg: torch.Tensor
    do: torch.Tensor

    @staticmethod
    def random(n: int, d: int) -> Inputs:
        dt = DT if DEVICE == "cuda" else torch.float32  # the interpreter has no bf16 dot
        q, k, v, do = (torch.randn(B, H, n, d, device=DEVICE, dtype=dt) for _ in range(4))
        qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))
        return Inputs(q, k, v, qg, kg, vg, do)

    @property
    def grad_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.qg, self.kg, self.vg


def grad_time(out: torch.Tensor, inp: Inputs) -> float:
    return bench(lambda: torch.autograd.grad(out, inp.grad_inputs, inp.do, retain_graph=True), **BWD_BENCH)


def max_rel_err(ours: Sequence[torch.Tensor], ref: Sequence[torch.Tensor]) -> dict[str, float]:
    """Per gradient: max |ours - ref| / max |ref|."""
    return {g: float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))
            for g, a, b in zip(("dq", "dk", "dv"), ours, ref)}


def block_sets(bm: Any, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A BlockMask's partial and full blocks as dense booleans ``[B, heads, R, C]``."""
    def dense(num: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        width = idx.shape[-1]
        valid = torch.arange(width, device=idx.device) < num[..., None]
        out = torch.zeros((*idx.shape[:-1], width + 1), dtype=torch.bool, device=idx.device)
        out.scatter_(-1, torch.where(valid, idx.long(), width), True)  # invalid slots: the extra column
        return out[..., :width].expand(idx.shape[0], heads, *idx.shape[2:])

    return dense(bm.kv_num_blocks, bm.kv_indices), dense(bm.full_kv_num_blocks, bm.full_kv_indices)


def same_blocks(a: Any, b: Any, heads: int) -> bool:
    """Both BlockMasks list the same partial and the same full blocks."""
    return all(torch.equal(x, y) for x, y in zip(block_sets(a, heads), block_sets(b, heads)))


def ours(case: Case, n: int, inp: Inputs, fwd_only: bool, r: dict[str, Any]) -> tuple[Any, Any]:
    """Our forward and backward times into ``r``; returns (output, gradients), None where failed."""
    import patternc
    from patternc.runtime.forward import default_config

    out = grads = None
    try:
        r["strategy"] = strategy_of(case.node, n, default_config(n, n, r["D"], DT, False))
    except Exception as e:
        r["strategy"] = "unknown: " + error_text(e)[:80]
    try:
        out, r["ours_fwd_first_s"] = first_call(lambda: patternc.attention(inp.q, inp.k, inp.v, case.node))
        r["ours_fwd_ms"] = bench(lambda: patternc.attention(inp.q, inp.k, inp.v, case.node), **FWD_BENCH)
    except Exception as e:
        r["ours_fwd_error"] = error_text(e)
    if fwd_only:
        return out, None
    try:
        o = patternc.attention(inp.qg, inp.kg, inp.vg, case.node)
        grads, r["ours_bwd_first_s"] = first_call(
            lambda: torch.autograd.grad(o, inp.grad_inputs, inp.do, retain_graph=True))
        r["ours_bwd_ms"] = grad_time(o, inp)
    except Exception as e:
        r["ours_bwd_error"] = error_text(e)
    return out, grads


def flex_pass(tag: str, bm: Any, flex: Any, inp: Inputs, fwd_only: bool, r: dict[str, Any],
              mine: tuple[Any, Any]) -> None:
    """FlexAttention on BlockMask ``bm``: forward and backward times and errors of ours against it
    into ``r`` under ``flex_{fwd,bwd}`` (``tag=""``) or ``flex_cbm_{fwd,bwd}`` (``tag="cbm_"``)."""
    out, grads = mine
    try:
        ref, first = first_call(lambda: flex(inp.q, inp.k, inp.v, block_mask=bm))
        r[f"flex_{tag}fwd_first_s"] = first
        r[f"flex_{tag}fwd_ms"] = bench(lambda: flex(inp.q, inp.k, inp.v, block_mask=bm), **FWD_BENCH)
        if out is not None:
            err = float((out.float() - ref.float()).abs().max())
            r["fwd_max_abs_err"] = max(err, r.get("fwd_max_abs_err", err))
        del ref
    except Exception as e:
        r[f"flex_{tag}fwd_error"] = error_text(e)
        empty_cache()
    if fwd_only:
        return
    try:
        fo = flex(inp.qg, inp.kg, inp.vg, block_mask=bm)
        ref_g, r[f"flex_{tag}bwd_first_s"] = first_call(
            lambda: torch.autograd.grad(fo, inp.grad_inputs, inp.do, retain_graph=True))
        r[f"flex_{tag}bwd_ms"] = grad_time(fo, inp)
        if grads is not None:
            errs = max_rel_err(grads, ref_g)
            old = r.get("bwd_max_rel_err") or errs
            r["bwd_max_rel_err"] = {g: max(errs[g], old[g]) for g in errs}
    except Exception as e:
        r[f"flex_{tag}bwd_error"] = error_text(e)
        empty_cache()


@functools.cache
def compiled_cbm() -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    return torch.compile(create_block_mask) if DEVICE == "cuda" else create_block_mask


def build_cbm(mod: Any, n: int, heads: int | None, r: dict[str, Any]) -> Any:
    """FlexAttention's own ``create_block_mask`` (compiled) on ``mod``: first-call seconds and the
    median of 3 later builds into ``r``; None (error recorded, e.g. OOM) when it fails."""
    import warnings

    from torch.nn.attention.flex_attention import create_block_mask

    def build() -> Any:
        # torch 2.11 deprecates _compile=True in favour of torch.compile(create_block_mask); the
        # flag is what our H100 runs measured, the fallback is for a torch that dropped it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return create_block_mask(mod, None, heads, n, n, device=DEVICE, _compile=DEVICE == "cuda")
            except TypeError:
                return compiled_cbm()(mod, None, heads, n, n, device=DEVICE)

    try:
        bm, r["cbm_first_s"] = first_call(build)
        if not WARM:
            times = sorted(first_call(build)[1] for _ in range(3))
            r["cbm_ms"] = times[1] * 1e3
        return bm
    except Exception as e:
        r["cbm_error"] = error_text(e)
        empty_cache()
        return None


def build_plan(node: ir.Node, n: int, heads: int | None, r: dict[str, Any]) -> None:
    """Our answer to ``create_block_mask``: the plan lowered uncached (host) at FlexAttention's
    block size, moved to the GPU and expanded to both directions' index tensors there; the
    median of 3 into ``r["plan_ms"]``."""
    from patternc.lower import lower

    def build() -> None:
        lower.cache_clear()
        lower(node, n, n, heads=heads).to(DEVICE).expanded()
        sync()

    if WARM:
        return
    try:
        times = sorted(first_call(build)[1] for _ in range(3))
        r["plan_ms"] = times[1] * 1e3
    except Exception as e:
        r["plan_error"] = error_text(e)


def measure(case: Case, n: int, d: int, inp: Inputs, flex: Any, opts: argparse.Namespace,
            dense: dict[str, float]) -> dict[str, Any]:
    """One row: ours, FlexAttention (to_flex and create_block_mask masks) on ``case`` at (n, d)."""
    from patternc.flex import to_flex

    t_row = time.perf_counter()
    G = ir.head_counts(case.node)
    heads = H if G > 1 else None  # per-head masks only where heads differ, as a flex user would
    r: dict[str, Any] = dict(name=case.name, label=case.label, expr=case.expr, source=case.source,
                             N=n, D=d, head_groups=G, fwd_only=opts.fwd_only,
                             cudnn_fwd_ms=dense.get("cudnn_fwd"), cudnn_bwd_ms=dense.get("cudnn_bwd"))
    try:
        r["nnz"], r["nnz_exact"] = nnz_heads(case.node, n, H)
        r["density"] = r["nnz"] / (H * n * n)
    except Exception as e:
        r["nnz_error"] = error_text(e)
    mine = ours(case, n, inp, opts.fwd_only, r)
    torch._dynamo.reset()  # one flex compile per row: keep dynamo's guard lists short
    bm = None
    try:
        t0 = time.perf_counter()
        bm = to_flex(case.node, n, heads=heads, device=DEVICE)
        sync()
        r["to_flex_ms"] = (time.perf_counter() - t0) * 1e3
    except Exception as e:
        r["flex_fwd_error"] = r["flex_bwd_error"] = "to_flex: " + error_text(e)
    if bm is not None:
        flex_pass("", bm, flex, inp, opts.fwd_only, r, mine)
    if bm is not None and not opts.no_cbm:
        build_plan(case.node, n, heads, r)
        cbm = build_cbm(bm.mask_mod, n, heads, r)
        if cbm is not None:
            r["cbm_same_blocks"] = same_blocks(cbm, bm, H)
            flex_pass("cbm_", cbm, flex, inp, opts.fwd_only, r, mine)
    for _ in range(1, opts.rounds):
        if bm is not None:
            retime(case, inp, flex, bm, opts.fwd_only, r)
    r["row_s"] = time.perf_counter() - t_row
    return r


def retime(case: Case, inp: Inputs, flex: Any, bm: Any, fwd_only: bool, r: dict[str, Any]) -> None:
    """Another round of ours and FlexAttention (``to_flex`` mask), alternating with the first: each
    time becomes the lower of its rounds' medians, so that a transient (clocks, another process on
    the host) does not decide a ratio."""
    import patternc

    def low(key: str, fn: Callable[[], Any], **budget: int) -> None:
        if isinstance(r.get(key), float):
            r[key] = min(r[key], bench(fn, **budget))

    low("ours_fwd_ms", lambda: patternc.attention(inp.q, inp.k, inp.v, case.node), **FWD_BENCH)
    low("flex_fwd_ms", lambda: flex(inp.q, inp.k, inp.v, block_mask=bm), **FWD_BENCH)
    if fwd_only:
        return
    if isinstance(r.get("ours_bwd_ms"), float):
        o = patternc.attention(inp.qg, inp.kg, inp.vg, case.node)
        r["ours_bwd_ms"] = min(r["ours_bwd_ms"], grad_time(o, inp))
    if isinstance(r.get("flex_bwd_ms"), float):
        fo = flex(inp.qg, inp.kg, inp.vg, block_mask=bm)
        r["flex_bwd_ms"] = min(r["flex_bwd_ms"], grad_time(fo, inp))


def dense_sdpa(n: int, d: int, inp: Inputs, fwd_only: bool) -> list[dict[str, Any]]:
    """Dense SDPA, flash and cuDNN backends, full and causal: forward and backward medians."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = []
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        for causal in (False, True):
            rec: dict[str, Any] = dict(N=n, D=d, backend=name, causal=causal)
            try:
                with sdpa_kernel(be):
                    rec["fwd_ms"] = bench(functools.partial(F.scaled_dot_product_attention, inp.q, inp.k,
                                                            inp.v, is_causal=causal), **FWD_BENCH)
                    if not fwd_only:
                        o = F.scaled_dot_product_attention(inp.qg, inp.kg, inp.vg, is_causal=causal)
                        rec["bwd_ms"] = grad_time(o, inp)
                        del o
            except Exception as e:  # a backend may be missing on this build or this head dim
                rec["error"] = error_text(e)
            out.append(rec)
    return out


def configure_dynamo() -> None:
    """Every (pattern, N, D) compiles flex anew: past dynamo's default recompile limit (8) it would
    silently fall back to eager flex_attention, which materializes the n x n scores. Donated
    buffers forbid the ``retain_graph`` that repeated timing of one backward needs."""
    import torch._dynamo.config
    import torch._functorch.config

    for key in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, key):
            setattr(torch._dynamo.config, key, 4096)
    torch._functorch.config.donated_buffer = False


def git_commit() -> str | None:
    """``$PATTERNC_COMMIT`` (a copy without .git), else the checkout's commit (+dirty)."""
    if os.environ.get("PATTERNC_COMMIT"):
        return os.environ["PATTERNC_COMMIT"]
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else None
    except Exception:
        return None


def meta(argv: Sequence[str]) -> dict[str, Any]:
    import triton

    import patternc
    from patternc.runtime import residue

    on_gpu = DEVICE == "cuda"
    return dict(date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                gpu=torch.cuda.get_device_name() if on_gpu else DEVICE, torch=torch.__version__,
                triton=triton.__version__, patternc=patternc.__version__, commit=git_commit(),
                cuda=torch.version.cuda, B=B, H=H, dtype=str(DT if on_gpu else torch.float32),
                residue_mode=residue.default_mode(), argv=["benchmarks/suite.py", *argv],
                do_bench=dict(fwd=FWD_BENCH, bwd=BWD_BENCH))


def write_json(path: str, result: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)


def default_json(opts: argparse.Namespace) -> str:
    tag = f"n{'-'.join(map(str, opts.n))}_d{'-'.join(map(str, opts.d))}"
    if opts.shard:
        tag += f"_s{opts.shard[0]}of{opts.shard[1]}"
    return os.path.join(os.environ.get("OUT", "."), f"bench_suite_{tag}.json")


def progress(r: dict[str, Any], t: float) -> str:
    def ms(k: str) -> str:
        return f"{r[k]:.3f}" if isinstance(r.get(k), float) else "-"

    return (f"[{t:6.0f}s] {r['label'][:40]:40s} N={r['N']} D={r['D']} fwd {ms('ours_fwd_ms')} / flex "
            f"{ms('flex_fwd_ms')} ms, bwd {ms('ours_bwd_ms')} / flex {ms('flex_bwd_ms')} ms, "
            f"row {r['row_s']:.1f} s" + ("" if not any(k.endswith("_error") for k in r) else "  (errors)"))


def warm_up(cases: Sequence[Case], n: int, d: int, opts: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Compile in parallel: ``--jobs`` worker processes make every first call of the slice (ours,
    flex, create_block_mask) into the on-disk caches (Triton's, Inductor's, patternc's), so the
    measuring process mostly loads kernels. Returns each case's cold first-call seconds; best
    effort: a failed or late worker only leaves its compiles to the measuring process."""
    import tempfile

    tmp = tempfile.mkdtemp(prefix="suite_warm_")
    flags = [f for f, on in (("--fwd-only", opts.fwd_only), ("--no-cbm", opts.no_cbm),
                             ("--device=" + opts.device, True)) if on]
    env = dict(os.environ, TORCHINDUCTOR_COMPILE_THREADS=str(max(1, (os.cpu_count() or 1) // opts.jobs)))
    procs = []
    for i, names in enumerate(warm_chunks(cases, opts.jobs)):
        js = os.path.join(tmp, f"w{i}.json")
        log = open(os.path.join(tmp, f"w{i}.log"), "w")  # noqa: SIM115 (closed below)
        cmd = [sys.executable, os.path.abspath(__file__), *warm_argv(names, n, d, flags, js)]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), js, log))
    deadline = time.perf_counter() + opts.warm_timeout_s
    cold: dict[str, dict[str, float]] = {}
    for p, js, log in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            p.kill()  # only this worker, which this process started
            p.wait()
        log.close()
        if p.returncode != 0:
            with open(log.name) as f:
                print(f"warm-up worker rc={p.returncode}: " + f.read()[-400:], flush=True)
        if os.path.exists(js):
            with open(js) as f:
                for row in json.load(f)["rows"]:
                    cold[row["name"]] = {k: v for k, v in row.items() if k.endswith("_first_s")}
    return cold


def run(opts: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """Measure every selected (N, D, pattern); JSON rewritten after every row."""
    from torch.nn.attention.flex_attention import flex_attention

    global DEVICE, WARM
    DEVICE, WARM = opts.device, opts.warm_only
    configure_dynamo()
    flex = torch.compile(flex_attention, dynamic=False) if DEVICE == "cuda" else flex_attention
    cases = select(all_cases(opts.set), opts.only, opts.shard)
    path = opts.json or default_json(opts)
    result: dict[str, Any] = dict(meta=meta(argv), rows=[], dense=[], slices=[], skipped=[])
    start = time.perf_counter()
    torch.manual_seed(0)
    for d in opts.d:
        for n in opts.n:
            t_slice, done = time.perf_counter(), 0
            cold = warm_up(cases, n, d, opts) if opts.jobs > 0 and not WARM else {}
            warm_s = time.perf_counter() - t_slice
            inp = Inputs.random(n, d)
            recs = dense_sdpa(n, d, inp, opts.fwd_only) if not opts.no_dense else []
            result["dense"] += recs
            cudnn = next((x for x in recs if x["backend"] == "cudnn" and not x["causal"]), {})
            dense = {f"cudnn_{p}": cudnn[f"{p}_ms"] for p in ("fwd", "bwd") if f"{p}_ms" in cudnn}
            for case in cases:
                if opts.deadline_s is not None and time.perf_counter() - start > opts.deadline_s:
                    result["skipped"].append(f"{case.name} N={n} D={d}")
                    continue
                result["rows"].append(measure(case, n, d, inp, flex, opts, dense))
                if case.name in cold:
                    result["rows"][-1]["cold"] = cold[case.name]
                done += 1
                print(progress(result["rows"][-1], time.perf_counter() - start), flush=True)
                write_json(path, result)
                empty_cache()
            result["slices"].append(dict(N=n, D=d, rows=done, wall_s=time.perf_counter() - t_slice,
                                         warm_s=warm_s))
            write_json(path, result)
            del inp
            empty_cache()
    print(f"JSON: {path}")
    return result


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=ints, default=[4096, 16384, 65536], help="token counts, comma-separated")
    p.add_argument("--d", type=ints, default=[64, 128], help="head dims, comma-separated")
    p.add_argument("--only", nargs="+", action="extend", metavar="PATTERN",
                   help="an exact name / alias, else every pattern whose name or expression contains it")
    p.add_argument("--set", default="all", choices=("all", "stdlib", "anchors"), help="which patterns")
    p.add_argument("--shard", type=parse_shard, help="I/K: every K-th selected pattern from the I-th")
    p.add_argument("--fwd-only", action="store_true", help="forward passes only")
    p.add_argument("--no-cbm", action="store_true", help="skip FlexAttention's create_block_mask")
    p.add_argument("--no-dense", action="store_true", help="skip dense SDPA")
    p.add_argument("--deadline-s", type=float, help="start no new row after this many seconds")
    p.add_argument("--rounds", type=int, default=2,
                   help="timing rounds of ours and flex (to_flex), alternating; each keeps its lowest median")
    p.add_argument("--jobs", type=int, default=0,
                   help="compile in parallel first: this many warm-up processes per slice (0: none)")
    p.add_argument("--warm-timeout-s", type=float, default=300, help="the warm-up's limit per slice")
    p.add_argument("--warm-only", action="store_true", help=argparse.SUPPRESS)  # a warm-up worker
    p.add_argument("--json", help="JSON path (default $OUT/bench_suite_<slice>.json)")
    p.add_argument("--md", help="also write the markdown tables here")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cpu: a smoke test on Triton's interpreter and eager flex (tiny N only)")
    p.add_argument("--list", action="store_true", help="print the selected patterns and exit (no GPU)")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="print one table from earlier JSON results")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parser().parse_args(argv)
    if opts.list:
        for c in select(all_cases(opts.set), opts.only, opts.shard):
            print(f"{c.label:44s} {c.source:36s} {c.expr}")
        return
    if opts.merge:
        results = []
        for path in opts.merge:
            with open(path) as f:
                results.append(json.load(f))
        result = merge(results)
        if opts.json:
            write_json(opts.json, result)
    else:
        result = run(opts, argv)
    emit(markdown(result), opts.md)


def emit(text: str, md_path: str | None) -> None:
    """Print a report and, given a path, write it there too."""
    if md_path:
        with open(md_path, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
