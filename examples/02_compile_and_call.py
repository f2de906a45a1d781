"""Example 2: compile a `.sap` file to a Python module and call it from a PyTorch transformer block.

    python examples/02_compile_and_call.py            # 4k tokens on a GPU
    python examples/02_compile_and_call.py --small    # tiny sizes on the CPU interpreter (CI)

`patternc compile my.sap -o DIR` does the same from the command line: it writes one module per
file with one attention function per exported pattern, needing only torch, triton and patternc.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from _common import SparseBlock, device, parser
from torch import nn

import patternc
from patternc.compiler import compile_file
from patternc.reference import attention as dense_reference

SOURCE = """\
import longformer

# a causal local window with four global "sink" tokens, and the standard Longformer
pattern local_sinks(w = 32) = (window(w, 0) | cols([0..4])) & causal
pattern doc_encoder = longformer(w = 64, g = [0])
"""

def import_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def run_block(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's output and the gradient of a loss with respect to its input."""
    x = x.detach().clone().requires_grad_(True)
    out = block(x)
    out.float().square().mean().backward()
    assert x.grad is not None
    return out.detach(), x.grad


def main() -> int:
    args = parser(__doc__ or "").parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src = args.out / "my_attention.sap"
    src.write_text(SOURCE)
    modules = compile_file(src, args.out / "compiled")
    print(f"compiled {src} -> {', '.join(str(m) for m in modules)}")
    compiled = import_module(modules[0])

    dev = device()
    dtype = torch.float32 if dev.type == "cpu" else torch.bfloat16
    n, dim, heads = (48, 32, 2) if args.small else (4096, 512, 8)
    torch.manual_seed(0)
    x = torch.randn(2, n, dim, device=dev, dtype=dtype)
    prog = patternc.load(src)
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    for name, node in prog.exported.items():
        block = SparseBlock(dim, heads, getattr(compiled, name)).to(dev, dtype)
        out, grad = run_block(block, x)
        # the same block through patternc.attention (the pattern given at call time) and through
        # the dense reference (softmax over a materialized mask: slow, but the definition)
        block.attend = lambda q, k, v, node=node: patternc.attention(q, k, v, node)
        out2, grad2 = run_block(block, x)
        block.attend = lambda q, k, v, node=node: dense_reference(q, k, v, node)
        out3, grad3 = run_block(block, x)
        pairs = ((out, out2), (grad, grad2), (out, out3), (grad, grad3))
        errs = [(a - b).abs().max().item() for a, b in pairs]
        print(f"{name:12s} = {node.sap():45s} out {tuple(out.shape)}  "
              f"max |compiled - patternc.attention| = {max(errs[:2]):.2e}  "
              f"max |compiled - reference| = {max(errs[2:]):.2e} (outputs and input gradients)")
        if not max(errs) <= tol:
            print(f"error: {name} disagrees with the reference by {max(errs)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
