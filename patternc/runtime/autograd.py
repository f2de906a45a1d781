"""Autograd for the generated kernels, as ``torch.library`` custom ops.

``patternc::attention_fwd(q, k, v, pattern, scale) -> (out, lse)`` runs the forward kernel,
``patternc::attention_bwd(...) -> (dq, dk, dv)`` the backward kernels; ``register_autograd``
links them and ``register_fake`` gives both shapes without running anything, so that
``torch.compile(fullgraph=True)`` keeps the call in its graph (no graph break) and the compiled
graph calls the same kernels.

Custom ops take tensors and simple types only: the pattern travels as its canonical ``.sap``
text (``node.sap()``, which parses back to the same node). A process-wide registry maps the text
back to the node it came from, so no parsing happens in the common case; text that was never
registered (a graph saved by another process) goes through ``patternc.pattern``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from patternc import ir

_REGISTRY: dict[str, ir.Node] = {}
_KEYS: dict[int, tuple[ir.Node, str]] = {}  # id(node) -> (node, text): printing costs ~16 us a call


def pattern_key(node: ir.Node) -> str:
    """The op argument for ``node``: its canonical text, registered for :func:`pattern_node`."""
    hit = _KEYS.get(id(node))
    if hit is not None and hit[0] is node:  # the entry holds the node, so its id is not reused
        return hit[1]
    key = node.sap()
    _REGISTRY.setdefault(key, node)
    if len(_KEYS) >= 1024:
        _KEYS.clear()
    _KEYS[id(node)] = (node, key)
    return key


def pattern_node(key: str) -> ir.Node:
    """The node behind an op's pattern argument."""
    node = _REGISTRY.get(key)
    if node is None:
        from patternc.frontend import pattern as parse

        node = _REGISTRY.setdefault(key, parse(key))
    return node


@torch.library.custom_op("patternc::attention_fwd", mutates_args=())
def attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: str,
                  scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``[B, H, nq, D]`` and natural-log LSE ``[B, H, nq]`` (float32), both contiguous."""
    from patternc.runtime.forward import forward

    out, lse = forward(q, k, v, pattern_node(pattern), scale)
    # the fake below promises fresh contiguous tensors; never hand out a view of an input
    return out.contiguous(), lse.float().contiguous()


@attention_fwd.register_fake
def _attention_fwd_fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: str,
                        scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    B, H, nq, _ = q.shape
    return q.new_empty((B, H, nq, v.shape[-1])), q.new_empty((B, H, nq), dtype=torch.float32)


@torch.library.custom_op("patternc::attention_bwd", mutates_args=())
def attention_bwd(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                  lse: torch.Tensor, dlse: torch.Tensor | None, pattern: str,
                  scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dq, dk, dv)``; ``dlse`` is the gradient reaching the LSE output (or None)."""
    from patternc.runtime.backward import backward

    dq, dk, dv = backward(q, k, v, out, lse, do, pattern_node(pattern), scale, dlse=dlse)
    return dq.contiguous(), dk.contiguous(), dv.contiguous()


@attention_bwd.register_fake
def _attention_bwd_fake(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        out: torch.Tensor, lse: torch.Tensor, dlse: torch.Tensor | None, pattern: str,
                        scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    q, k, v, pattern, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.pattern, ctx.scale = pattern, scale


def _backward(ctx: Any, dout: torch.Tensor | None, dlse: torch.Tensor | None) -> tuple[Any, ...]:
    q, k, v, out, lse = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv = attention_bwd(dout, q, k, v, out, lse, dlse, ctx.pattern, ctx.scale)
    return dq, dk, dv, None, None


attention_fwd.register_autograd(_backward, setup_context=_setup_context)


class _EagerAttention(torch.autograd.Function):
    """The same forward and backward as the two ops, without the custom-op dispatch: eager calls
    with grad skip ``torch.library``'s wrappers (CPU side, measured: ~35-45 us less per
    forward, ~40-80 us less per backward). Old-style ``forward(ctx, ...)``: the ``setup_context``
    style costs as much as the custom op. ``torch.compile`` and ``torch.func`` use the ops."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, node: ir.Node,  # type: ignore[override]
                scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        from patternc.runtime.forward import forward

        out, lse = forward(q, k, v, node, scale, _checked=True)  # only patternc.attention calls it
        out, lse = out.contiguous(), lse.float().contiguous()  # as attention_fwd returns them
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.node, ctx.scale = node, scale
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, as with the op
        return out, lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor | None, dlse: torch.Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        from patternc.runtime.backward import backward

        q, k, v, out, lse = ctx.saved_tensors
        if dout is None:
            dout = torch.zeros_like(out)
        dq, dk, dv = backward(q, k, v, out, lse, dout, ctx.node, ctx.scale, dlse=dlse)
        return dq.contiguous(), dk.contiguous(), dv.contiguous(), None, None


# torch.func transforms need the ops (a ctx-style Function does not support them); private in
# torch, so when it is missing every call takes the ops
_transforms_active = getattr(torch._C, "_are_functorch_transforms_active", None)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, node: ir.Node,
              scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable ``(out, lse)`` of the pattern's attention (inputs already validated): the
    custom ops under ``torch.compile`` (and ``torch.func``), an equivalent ``autograd.Function``
    in eager mode."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if not torch.compiler.is_compiling() and _transforms_active is not None and not _transforms_active():
        out, lse = _EagerAttention.apply(q, k, v, node, scale)
        return out, lse
    out, lse = torch.ops.patternc.attention_fwd(q, k, v, pattern_key(node), scale)
    return out, lse
