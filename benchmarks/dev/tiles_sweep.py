"""Tile sweep for the plan-driven tile model (session 3, issue #6): every candidate forward and
backward config on a list of (N, D, pattern) jobs, with the plan's tile counts at that config
(``patternc.runtime.tiles.counts``), so that per-tile costs can be fitted
(``benchmarks/dev/tiles_fit.py``). bf16, B=1, H=16, random inputs.

Two phases in one command: ``TILES_WORKERS`` processes first compile and run every variant once
(in parallel: compilation is CPU-bound) and check it against compiled FlexAttention on the same
``to_flex`` BlockMask (max abs error forward, max relative error of the gradients); then this
process times every variant alone (``do_bench`` medians) and writes ``$OUT/tiles_<preset>.json``.

    TILES_PRESET=fit TILES_WORKERS=12 python benchmarks/dev/tiles_sweep.py
    TILES_JOBS='65536:128:block_local/block_local' TILES_FWD128= \
        TILES_BWD128='64,64,32,64,64,32,4,2;64,64,64,64,64,64,4,2' python benchmarks/dev/tiles_sweep.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

T0 = time.perf_counter()
B, H, DT = 1, int(os.environ.get("TILES_H", "16")), torch.bfloat16
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke test on the interpreter
ST = "sparse_transformer/sparse_transformer_"
FIXED, SUMMARY, STRIDE = ST + "fixed", ST + "summary", ST + "stride"
LONGF, BLC = "longformer/longformer", "block_local/block_local_causal"
STAR = "star_transformer/star_transformer"
BIGBIRD = "band(256) | global([0..16]) | random_blocks(3, 64)"

# forward (block_q, block_k, warps, stages) and backward (block_q, block_k, bm1, bn1, bm2, bn2,
# warps, stages) candidates per head dim; the first two of each list are today's rules
FWD = {64: ((64, 64, 4, 3), (128, 128, 4, 3), (128, 64, 4, 4), (64, 32, 4, 3), (64, 16, 4, 3),
            (128, 32, 4, 3), (128, 16, 4, 3)),
       128: ((64, 64, 4, 2), (128, 128, 8, 3), (64, 32, 4, 2), (64, 16, 4, 2), (128, 32, 4, 2),
             (128, 16, 4, 2))}
BWD = {64: ((64, 64, 64, 64, 64, 64, 4, 2), (128, 128, 64, 128, 128, 64, 8, 2),
            (64, 32, 64, 32, 64, 32, 4, 2), (64, 16, 64, 16, 64, 16, 4, 2),
            (128, 32, 64, 32, 128, 32, 4, 2), (128, 16, 64, 16, 128, 16, 4, 2)),
       128: ((64, 64, 32, 64, 64, 32, 4, 2), (128, 128, 64, 128, 128, 64, 8, 2),
             (64, 32, 32, 32, 64, 32, 4, 2), (64, 16, 32, 16, 64, 16, 4, 2),
             (128, 32, 32, 32, 128, 32, 8, 2), (128, 16, 32, 16, 128, 16, 8, 2))}

PRESETS: dict[str, list[tuple[int, int, str]]] = {
    "fit": [(65536, 64, p) for p in (FIXED, SUMMARY, STRIDE, STAR, BLC, LONGF, "band(256)", BIGBIRD,
                                     "causal")]
    + [(16384, 64, p) for p in (FIXED, SUMMARY, "band(256)", "window(64, 0)", "causal")]
    + [(4096, 64, p) for p in (FIXED, "band(256)", "window(64, 0)", BLC, LONGF, "causal")]
    + [(65536, 128, p) for p in (FIXED, SUMMARY, "band(256)", LONGF, BLC)]
    + [(16384, 128, p) for p in ("causal", FIXED)],
}


def node_of(text: str) -> Any:
    import patternc

    if "/" in text:  # stdlib file/name
        path, name = text.split("/")
        return patternc.load(f"patternc/stdlib_patterns/{path}.sap")[name]()
    return patternc.pattern(text)


def jobs() -> list[tuple[int, int, str]]:
    spec = os.environ.get("TILES_JOBS")
    if spec:  # "N:D:pattern;N:D:pattern"
        return [(int(a), int(b), c) for a, b, c in (s.split(":", 2) for s in spec.split(";"))]
    return PRESETS[os.environ.get("TILES_PRESET", "fit")]


def _configs(var: str) -> list[tuple[int, ...]] | None:
    # "a,b,...;a,b,..." (backward configs may add chunk: BackwardConfig's field order)
    spec = os.environ.get(var)
    return [tuple(int(x) for x in c.split(",")) for c in spec.split(";")] if spec else None


def variants(d: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every candidate of head dim ``d``; ``TILES_FWD`` / ``TILES_BWD`` replace the lists (an
    empty-string list: none of that kind)."""
    key = 64 if d <= 64 else 128
    fwd = _configs(f"TILES_FWD{key}") if f"TILES_FWD{key}" in os.environ else list(FWD[key])
    bwd = _configs(f"TILES_BWD{key}") if f"TILES_BWD{key}" in os.environ else list(BWD[key])
    return [("fwd", c) for c in fwd or ()] + [("bwd", c) for c in bwd or ()]


def inputs(n: int, d: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device=DEV).manual_seed(n + d)
    return tuple(torch.randn(B, H, n, d, device=DEV, dtype=DT, generator=g) for _ in range(4))


def run_variant(kind: str, c: tuple[int, ...], node: Any, t: tuple[torch.Tensor, ...],
                saved: tuple[torch.Tensor, torch.Tensor]) -> Callable[[], Any]:
    from patternc.codegen.backward import BackwardConfig
    from patternc.runtime.backward import backward
    from patternc.runtime.forward import ForwardConfig, forward

    q, k, v, do = t
    if kind == "fwd":
        cfg = ForwardConfig(*c)
        return lambda: forward(q, k, v, node, config=cfg)
    cfg_b = BackwardConfig(*c)
    return lambda: backward(q, k, v, saved[0], saved[1], do, node, config=cfg_b)


def bench(fn: Callable[[], Any]) -> float:
    """Median ms (``do_bench``; one timed call on the CPU smoke test)."""
    import triton

    if DEV != "cuda":
        fn()
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    return float(triton.testing.do_bench(fn, warmup=10, rep=30, return_mode="median"))


def warm(shard: int, shards: int, path: str) -> None:
    """Compile, run once and check every variant of this shard's jobs against FlexAttention."""
    from torch.nn.attention.flex_attention import flex_attention

    from patternc import ir
    from patternc.flex import to_flex
    from patternc.runtime.forward import forward

    flex = torch.compile(flex_attention, dynamic=False)
    errs: dict[str, Any] = {}
    for i, (n, d, text) in enumerate(jobs()):
        if i % shards != shard:
            continue
        node = node_of(text)
        t = inputs(n, d)
        q, k, v, do = t
        heads = H if ir.head_counts(node) > 1 else None
        qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
        if DEV == "cuda":
            fo = flex(qg, kg, vg, block_mask=to_flex(node, n, heads=heads, device=DEV))
        else:  # smoke test: FlexAttention has no CPU backward; the dense reference instead
            from patternc import reference

            fo = reference.attention(qg, kg, vg, node)
        gref = torch.autograd.grad(fo, (qg, kg, vg), do)
        saved = forward(q, k, v, node)
        for kind, c in variants(d):
            name = f"{n}|{d}|{text}|{kind}|{c}"
            try:
                res = run_variant(kind, c, node, t, saved)()
                if kind == "fwd":
                    errs[name] = float((res[0].float() - fo.detach().float()).abs().max())
                else:
                    errs[name] = max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                                     for a, b in zip(res, gref))
            except Exception as e:  # a sweep records failures
                errs[name] = repr(e)[:160]
        del fo, gref, saved
        if DEV == "cuda":
            torch.cuda.empty_cache()
        with open(path, "w") as f:
            json.dump(errs, f)


def main() -> None:
    import triton

    from patternc import ir
    from patternc.runtime import tiles

    workers = int(os.environ.get("TILES_WORKERS", "12"))
    warm_s = float(os.environ.get("TILES_WARM_S", "200"))
    deadline = float(os.environ.get("TILES_DEADLINE", "430"))
    paths = [f"/tmp/tiles_warm_{i}.json" for i in range(workers)]
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": "1"}  # no compile pool per worker
    procs = [subprocess.Popen([sys.executable, __file__, "warm", str(i), str(workers), p], env=env)
             for i, p in enumerate(paths)]
    for p in procs:
        try:
            p.wait(timeout=max(1.0, warm_s - (time.perf_counter() - T0)))
        except subprocess.TimeoutExpired:
            p.kill()
    errs: dict[str, Any] = {}
    for p in paths:
        try:
            with open(p) as f:
                errs.update(json.load(f))
        except (OSError, ValueError):
            pass
    print(f"warm phase {time.perf_counter() - T0:.0f} s, {len(errs)} variants checked", flush=True)
    rows: list[dict[str, Any]] = []
    out = os.path.join(os.environ.get("OUT", "."), f"tiles_{os.environ.get('TILES_PRESET', 'fit')}.json")
    for n, d, text in jobs():
        if time.perf_counter() - T0 > deadline:
            print("deadline", flush=True)
            break
        node = node_of(text)
        node_c = ir.concretize(node, n)
        t = inputs(n, d)
        from patternc.runtime.forward import forward

        saved = forward(t[0], t[1], t[2], node)
        for kind, c in variants(d):
            name = f"{n}|{d}|{text}|{kind}|{c}"
            row: dict[str, Any] = {"n": n, "d": d, "pattern": text, "kind": kind, "config": list(c),
                                   "err": errs.get(name)}
            try:
                row["counts"] = dataclasses.asdict(tiles.counts(node_c, n, n, c[0], c[1], H))
                if isinstance(row["err"], float) and time.perf_counter() - T0 < deadline:
                    fn = run_variant(kind, c, node, t, saved)
                    row["ms"] = bench(fn)
            except Exception as e:
                row["fail"] = repr(e)[:160]
            rows.append(row)
            print(f"{n:6d} {d:3d} {text[-30:]:30s} {kind} {c!s:34s} {row.get('ms')} err {row['err']}",
                  flush=True)
        del saved
        if DEV == "cuda":
            torch.cuda.empty_cache()
        with open(out, "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name() if DEV == "cuda" else "cpu",
                       "torch": torch.__version__, "triton": triton.__version__,
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, f, indent=0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "warm":
        warm(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main()
