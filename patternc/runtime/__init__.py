"""The PyTorch side: ``patternc.attention`` and the plain forward launcher.

Without a CUDA GPU, kernels run on Triton's CPU interpreter; it must be chosen before triton is
imported, so this package sets ``TRITON_INTERPRET=1`` (unless already set) when CUDA is missing.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from patternc import ir
from patternc.runtime.forward import check_inputs, forward

__all__ = ["as_node", "attention", "forward", "reset"]


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> ir.Node:
    """``.sap`` text to IR, once per text (nodes are immutable; a call with text would otherwise
    parse it every time)."""
    from patternc import pattern as parse

    node: ir.Node = parse(text)
    return node


def reset() -> None:
    """Forget every forward / backward set-up, prepared launch, cached backward call and compiled
    launcher of this process, so that the next calls build and decide them again: after changing
    a switch read when they are built (``PATTERNC_REG_CAP``, ``forward.COMPUTED_BLOCKS``, ...) or
    the generated templates (tests, A/B timings). Compiled binaries stay in Triton's caches."""
    import importlib

    from patternc.runtime import launch

    # by module name: the package's ``forward`` is the function, not the module
    rf = importlib.import_module("patternc.runtime.forward")
    rb = importlib.import_module("patternc.runtime.backward")
    for f in (rf.kernel_module, rf._cached_setup, rf._launches, rb._cached_setup, rb._setups):
        f.cache_clear()
    rb._CALLS.clear()
    launch._LAUNCHERS.clear()


def as_node(pattern: Any) -> ir.Node:
    """An IR node from an ``ir.Node``, ``.sap`` expression text, or a frontend pattern (``.node``)."""
    if isinstance(pattern, ir.Node):
        return pattern
    if isinstance(pattern, str):
        return _parse(pattern)
    node = getattr(pattern, "node", None)
    if isinstance(node, ir.Node):
        return node
    raise TypeError(f"pattern must be a patternc pattern, .sap text or IR node, got {type(pattern).__name__}")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: Any, scale: float | None = None,
              return_lse: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T * scale + mask) v`` for the pattern's mask (SPEC section 5).

    q ``[B, H, nq, D]``, k and v ``[B, Hkv, nk, D]`` (``Hkv`` divides ``H``); float16, bfloat16 or
    float32; ``scale`` defaults to ``1/sqrt(D)``. Rows with no keys give 0. With ``return_lse``
    also returns the natural-log log-sum-exp of the scaled scores, float32 ``[B, H, nq]``
    (``-inf`` on rows with no keys). Differentiable when the inputs require grad.
    """
    node = as_node(pattern)
    check_inputs(q, k, v)
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if needs_grad or torch.compiler.is_compiling():
        # the torch.library custom op: autograd, and no graph break under torch.compile
        from patternc.runtime import autograd

        out, lse = autograd.attention(q, k, v, node, scale)
    else:
        out, lse = forward(q, k, v, node, scale, _checked=True)
    return (out, lse) if return_lse else out
