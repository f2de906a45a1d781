"""Kernel-variant sweep on one GPU (engineer K, issue #6): our forward / backward kernels under
several tile configs, grid orders and template variants, each checked against FlexAttention's
output in the same process (relative L2 error) and timed (``do_bench`` medians), beside
FlexAttention itself. bf16, B=1, H=16.

    python benchmarks/dev/kvariants.py        # JSON to $OUT/kvariants.json (default .)

``PARTS`` (comma list, default all): fwd64, fwd128, bwd64, bwd128.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import triton
from devcommon import partial_first, trans_k

import patternc.codegen.forward as gf
import patternc.runtime.backward as rb
from patternc import ir
from patternc.codegen.backward import BackwardConfig
from patternc.runtime.forward import ForwardConfig

rf = importlib.import_module("patternc.runtime.forward")  # the package exports a function of that name
B, H, DT = 1, 16, torch.bfloat16
ROWS: list[dict[str, Any]] = []
BASE_KERNEL, BASE_VERSION = gf._KERNEL, gf.VERSION


def bench(fn: Callable[[], Any]) -> float:
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def nnz(name: str, n: int) -> int:
    return n * (n + 1) // 2 if name == "causal" else sum(min(n, i + 257) - max(0, i - 256) for i in range(n))


NODES = {"causal": ir.Causal(), "band(256)": ir.Band(256)}
MODS = {"causal": lambda b, h, q, k: q >= k, "band(256)": lambda b, h, q, k: (q - k).abs() <= 256}


def _fma(text: str) -> str:
    """Scale folded into one FMA per score (valid for scale > 0): max over raw scores."""
    for a, b in (("s = tl.dot(q, kt{prec}) * qk_scale", "s = tl.dot(q, kt{prec})"),
                 ("m_new = tl.maximum(m_i, tl.max(s, 1))",
                  "m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)"),
                 ("pr = tl.math.exp2(s - m_new[:, None])",
                  "pr = tl.math.exp2(s * qk_scale - m_new[:, None])")):
        assert a in text, a
        text = text.replace(a, b)
    return text


def _templates() -> dict[str, str]:
    """The variants that apply to the current template (an adopted one no longer does)."""
    out = {"base": BASE_KERNEL}
    for name, fn in (("transK", trans_k), ("pfirst", partial_first), ("fma", _fma)):
        with contextlib.suppress(AssertionError, ValueError):
            out[name] = fn(BASE_KERNEL)
    return out


TEMPLATES = _templates()


def use(template: str, heads_fast: bool = False) -> None:
    gf._KERNEL = TEMPLATES[template]
    gf.VERSION = f"{BASE_VERSION}-{template}"  # type: ignore[assignment]
    if heads_fast:  # the heads-fastest grid order lost the first sweep (23.4 vs 23.2 ms) and is gone
        raise ValueError("the heads-fastest grid order is no longer in the kernels")
    for f in (rf.kernel_module, rf._cached_setup, rf._launches):
        f.cache_clear()


def flex_fns() -> tuple[Any, Any]:
    import torch._dynamo.config
    import torch._functorch.config
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    torch._functorch.config.donated_buffer = False
    torch._dynamo.config.cache_size_limit = 1000
    return torch.compile(flex_attention, dynamic=False), create_block_mask


def record(**r: Any) -> None:
    ROWS.append(r)
    keys = ("part", "pattern", "N", "D", "variant", "ms", "tflops", "vs_flex", "err")
    cells = (f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys)
    print(" | ".join(cells), r.get("error", ""), flush=True)


Variant = tuple[str, bool, tuple[int, int, int, int] | None]  # template, heads fastest, config


def fwd_part(D: int, n: int, variants: dict[str, list[Variant]]) -> None:
    flex, cbm = flex_fns()
    q, k, v = (torch.randn(B, H, n, D, device="cuda", dtype=DT) for _ in range(3))
    for name, vs in variants.items():
        bm = cbm(MODS[name], None, None, n, n, device="cuda", _compile=True)
        ref = flex(q, k, v, block_mask=bm)
        tf = bench(partial(flex, q, k, v, block_mask=bm))
        work = 4 * nnz(name, n) * D * H * B
        record(part="fwd", pattern=name, N=n, D=D, variant="flex", ms=tf, tflops=work / tf / 1e9)
        for template, heads_fast, c in vs:
            use(template, heads_fast)
            cfg = ForwardConfig(*c) if c else None
            label = f"{template}{'/heads' if heads_fast else ''}/{'x'.join(map(str, c)) if c else 'default'}"
            try:
                out, _ = rf.forward(q, k, v, NODES[name], config=cfg)
                err = rel(out, ref)
                t = bench(partial(rf.forward, q, k, v, NODES[name], config=cfg))
                record(part="fwd", pattern=name, N=n, D=D, variant=label, ms=t, tflops=work / t / 1e9,
                       vs_flex=tf / t, err=err)
            except Exception as e:  # a config that does not fit (shared memory) is a result too
                record(part="fwd", pattern=name, N=n, D=D, variant=label, error=repr(e)[:200])
    use("base")


def bwd_part(D: int, ns: tuple[int, ...], configs: list[tuple[BackwardConfig | None, bool]],
             names: tuple[str, ...]) -> None:
    flex, cbm = flex_fns()
    for n in ns:
        q, k, v, do = (torch.randn(B, H, n, D, device="cuda", dtype=DT) for _ in range(4))
        for name in names:
            bm = cbm(MODS[name], None, None, n, n, device="cuda", _compile=True)
            qf, kf, vf = (t.clone().requires_grad_() for t in (q, k, v))
            of = flex(qf, kf, vf, block_mask=bm)
            gref = torch.autograd.grad(of, (qf, kf, vf), do, retain_graph=True)
            tf = bench(partial(torch.autograd.grad, of, (qf, kf, vf), do, retain_graph=True))
            work = 2.5 * 4 * nnz(name, n) * D * H * B
            record(part="bwd", pattern=name, N=n, D=D, variant="flex", ms=tf, tflops=work / tf / 1e9)
            out, lse = rf.forward(q, k, v, NODES[name])
            for cfg, heads_fast in configs:
                use("base", heads_fast)
                label = (f"{'heads/' if heads_fast else ''}"
                         + (f"{cfg.block_q}x{cfg.block_k}/{cfg.bm1},{cfg.bn1}/{cfg.bm2},{cfg.bn2}/"
                            f"w{cfg.num_warps}s{cfg.num_stages}" if cfg else "default"))
                try:
                    g = rb.backward(q, k, v, out, lse, do, NODES[name], config=cfg)
                    err = max(rel(a, b) for a, b in zip(g, gref))
                    t = bench(partial(rb.backward, q, k, v, out, lse, do, NODES[name], config=cfg))
                    record(part="bwd", pattern=name, N=n, D=D, variant=label, ms=t, tflops=work / t / 1e9,
                           vs_flex=tf / t, err=err)
                except Exception as e:
                    record(part="bwd", pattern=name, N=n, D=D, variant=label, error=repr(e)[:200])
    use("base")


def main() -> None:
    parts = os.environ.get("PARTS", "fwd64,fwd128,bwd64,bwd128").split(",")
    t0 = time.time()
    n = int(os.environ.get("N", "65536"))
    if "fwd64" in parts:
        fwd_part(64, n, {
            "causal": [("base", False, None), ("base", True, None), ("base", False, (128, 128, 4, 3)),
                       ("base", False, (128, 64, 4, 3)), ("base", False, (128, 128, 8, 3)),
                       ("transK", False, None), ("transK", False, (128, 128, 4, 3)), ("pfirst", False, None),
                       ("fma", False, None), ("fma", False, (128, 128, 4, 3))],
            "band(256)": [("base", False, None), ("base", True, None), ("base", False, (128, 64, 4, 3)),
                          ("base", False, (64, 64, 4, 4)), ("transK", False, None), ("fma", False, None)],
        })
    if "fwd128" in parts:
        fwd_part(128, n, {
            "causal": [("base", False, None), ("base", False, (128, 64, 8, 3)),
                       ("base", False, (128, 128, 8, 2)), ("base", False, (128, 64, 4, 3)),
                       ("base", False, (64, 64, 4, 3)),
                       ("transK", False, (128, 64, 8, 3)), ("fma", False, None),
                       ("fma", False, (128, 64, 8, 3))],
            "band(256)": [("base", False, None), ("base", False, (128, 64, 8, 3)),
                          ("base", False, (64, 64, 4, 3)), ("base", False, (64, 64, 4, 2)),
                          ("base", False, (64, 128, 4, 3)),
                          ("base", False, (128, 32, 4, 3))],
        })
    if "bwd64" in parts:
        bwd_part(64, (16384,), [
            (None, False), (None, True), (BackwardConfig(64, 64, 64, 64, 64, 64, 4, 3), False),
            (BackwardConfig(128, 128, 64, 128, 128, 64, 8, 3), False),
            (BackwardConfig(128, 128, 64, 128, 128, 64, 8, 2), False),
            (BackwardConfig(64, 128, 64, 128, 64, 64, 8, 3), False),
            (BackwardConfig(64, 64, 64, 64, 64, 64, 8, 3), False),
            (BackwardConfig(128, 128, 32, 128, 128, 32, 8, 3), False)], ("causal", "band(256)"))
    if "bwd128" in parts:
        bwd_part(128, (16384,), [
            (None, False), (BackwardConfig(64, 64, 32, 64, 64, 32, 4, 3), False),
            (BackwardConfig(128, 128, 64, 128, 128, 64, 8, 3), False),
            (BackwardConfig(128, 128, 64, 128, 128, 64, 8, 2), False),
            (BackwardConfig(64, 64, 64, 64, 64, 64, 8, 2), False),
            (BackwardConfig(64, 64, 32, 64, 64, 32, 8, 3), False)], ("causal", "band(256)"))
    if "confirm" in parts:  # the adopted kernels (fma template, dense / sparse rules) against flex
        fwd_part(64, 65536, {"causal": [("base", False, None)], "band(256)": [("base", False, None)]})
        fwd_part(128, 65536, {
            "causal": [("base", False, None), ("base", False, (128, 128, 8, 3)),
                       ("base", False, (128, 64, 8, 2))],
            "band(256)": [("base", False, None), ("base", False, (64, 64, 4, 3))]})
        bwd_part(128, (16384,), [
            (None, False), (BackwardConfig(128, 128, 32, 128, 128, 32, 8, 2), False),
            (BackwardConfig(64, 128, 64, 128, 64, 64, 8, 2), False),
            (BackwardConfig(128, 128, 64, 128, 128, 64, 4, 2), False)], ("causal",))
        bwd_part(128, (65536,), [(None, False)], ("causal", "band(256)"))
        bwd_part(64, (65536,), [(None, False), (BackwardConfig(64, 64, 64, 64, 64, 64, 4, 3), False)],
                 ("causal", "band(256)"))
    out = os.environ.get("OUT", ".")
    with open(os.path.join(out, "kvariants.json"), "w") as f:
        json.dump(dict(rows=ROWS, gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                       triton=triton.__version__, seconds=time.time() - t0), f, indent=1)
    print(f"done in {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
