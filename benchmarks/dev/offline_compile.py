"""Shared memory of the backward kernels for an H100, compiled on a machine without a GPU (session
8, issue #6). Triton compiles for a target given by hand (``GPUTarget("cuda", 90, 32)``) without
a driver, so a CPU machine can read what each config asks of shared memory and the TTGIR behind
it. The numbers match the H100's: 197,632 B for the one-launch kernel at 128x128 / 8 warps / 2
stages and 264,192 at 3 stages (``benchmarks/dev/smem_probe.py`` on the device).

Two phases, each in its own process. ``capture`` runs ``runtime.backward`` on Triton's
interpreter with the launches recorded: kernel source file, argument kinds and keywords. Then
``compile`` compiles each recorded kernel with the Triton at ``$OC_TRITON``, or the installed one
when unset. Pass the device's version, e.g. ``pip install --target /tmp/t36 --no-deps
triton==3.6.0``. Arguments get the specializations a GPU launch gives them: 16-byte-aligned
pointers, integers divisible by 16, and the integer 1 as a constant. Without these, Triton does
not pipeline the loads, and the numbers are those of another kernel.

    OC_TRITON=/tmp/t36 OC_CONFIGS='128,128,64,128,128,64,8,3;64,64,64,64,64,64,4,2' \\
        OC_PATTERN=block_local/block_local python benchmarks/dev/offline_compile.py

Prints one line per kernel and config; writes ``$OUT/<kernel>_<config>.ttgir``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.environ.get("OC_CONFIGS", "128,128,64,128,128,64,8,3")
PATTERN = os.environ.get("OC_PATTERN", "block_local/block_local")
KERNELS = ("dkdv_kernel", "dq_kernel", "bwd_kernel")
POINTERS = {"bfloat16": "*bf16", "float16": "*fp16", "float32": "*fp32", "int32": "*i32", "int64": "*i64"}


def capture(config: str, fused: bool) -> list[dict[str, Any]]:
    """The backward launches of one config (interpreter, launches recorded instead of run)."""
    import importlib

    import torch

    import patternc
    from patternc.codegen.backward import BackwardConfig
    from patternc.runtime.launch import Prepared, Slot

    rb = importlib.import_module("patternc.runtime.backward")
    rec: list[dict[str, Any]] = []

    def record(site: Prepared, tensors: Any) -> None:
        fn = site.launcher.fn
        args = [tensors[a.index] if isinstance(a, Slot) else a for a in site.args]
        if fn.__name__ in KERNELS:
            rec.append({"path": fn.fn.__code__.co_filename, "name": fn.__name__, "kw": dict(site.kwargs),
                        "args": [
                ["T", str(a.dtype).removeprefix("torch.")] if isinstance(a, torch.Tensor)
                else ["I", a] if type(a) is int else ["F", a] for a in args]})

    Prepared.__call__ = record  # type: ignore[method-assign]
    rb._FUSED = fused
    path, name = PATTERN.split("/")
    node = patternc.load(os.path.join(ROOT, f"patternc/stdlib_patterns/{path}.sap"))[name]()
    q, k, v, do = (torch.randn(1, 2, 2048, 128, dtype=torch.bfloat16) for _ in range(4))
    rb.backward(q, k, v, torch.zeros_like(q), torch.zeros(1, 2, 2048), do, node,
                config=BackwardConfig(*map(int, config.split(","))))
    for r in rec:  # the GPU's values of what the interpreter sets otherwise
        r["kw"].update(UPCAST=False, PREC="tf32")
    return rec


def compile_one(r: dict[str, Any], tag: str) -> str:
    """Compile one recorded launch for sm_90: its shared memory, and its TTGIR under ``$OUT``."""
    import importlib.util

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec = importlib.util.spec_from_file_location("generated", r["path"])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, r["name"])
    names = fn.arg_names
    kw = dict(r["kw"])
    options = {"num_warps": kw.pop("num_warps"), "num_stages": kw.pop("num_stages")}
    sig: dict[str, str] = {}
    consts: dict[tuple[int, ...], Any] = {}
    attrs: dict[tuple[int, ...], Any] = {}
    for i, name in enumerate(names):
        if i < len(r["args"]):
            kind, val = r["args"][i]
            sig[name] = POINTERS[val] if kind == "T" else "i32" if kind == "I" else "fp32"
            if kind == "I" and val == 1:
                sig[name], consts[(i,)] = "constexpr", 1
            elif kind == "T" or (kind == "I" and val % 16 == 0):
                attrs[(i,)] = [["tt.divisibility", 16]]
        elif name in kw:
            sig[name], consts[(i,)] = "constexpr", kw[name]
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)
    for ext in ("ttgir", "ptx"):
        with open(os.path.join(os.environ.get("OUT", "."), f"{r['name']}_{tag}.{ext}"), "w") as f:
            f.write(kernel.asm[ext])
    return f"{r['name']:12s} {tag:32s} shared {kernel.metadata.shared:7d} B (triton {triton.__version__})"


def main() -> None:
    phase = sys.argv[1] if len(sys.argv) > 1 else ""
    configs = CONFIGS.split(";")
    if phase == "capture":  # each config once with one launch, once with two
        with open(sys.argv[2], "w") as f:
            json.dump([capture(c, fused) for c in configs for fused in (True, False)], f)
        return
    if phase == "compile":
        with open(sys.argv[2]) as f:
            runs = json.load(f)
        for launches, config in zip(runs, [c for c in configs for _ in (0, 1)]):
            for r in launches:
                print(compile_one(r, config.replace(",", "_")), flush=True)
        return
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
        subprocess.run([sys.executable, __file__, "capture", tmp.name], check=True,
                       env={**env, "TRITON_INTERPRET": "1"})
        extra = [os.environ["OC_TRITON"]] if os.environ.get("OC_TRITON") else []
        path = os.pathsep.join([*extra, env["PYTHONPATH"]])
        subprocess.run([sys.executable, __file__, "compile", tmp.name], check=True,
                       env={**env, "TRITON_INTERPRET": "0", "PYTHONPATH": path})


if __name__ == "__main__":
    main()
