"""Helpers for the backward tests: dense plans, reference forward and reference gradients.

Plans built here come from the dense reference mask, so kernel tests do not depend on the
lowering; they are checked against ``patternc.lower`` elsewhere. No tests live in this file.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from patternc import ir
from patternc.plan import BlockTables, Plan
from patternc.reference import attention as ref_attention
from patternc.reference import mask_np


def _tables(kind: np.ndarray) -> BlockTables:
    """BCSR tables from ``kind[G, rows, cols]`` (0 empty, 1 partial, 2 full)."""
    G, rows, cols = kind.shape
    out = []
    for code in (1, 2):
        num = np.zeros((G, rows), dtype=np.int32)
        idx = np.zeros((G, rows, max(cols, 1)), dtype=np.int32)
        for g in range(G):
            for r in range(rows):
                hit = np.flatnonzero(kind[g, r] == code)
                num[g, r] = hit.size
                idx[g, r, :hit.size] = hit
        out += [torch.from_numpy(num), torch.from_numpy(idx)]
    return BlockTables.from_lists(out[0], out[1], out[2], out[3])


def dense_plan(node: ir.Node, nq: int, nk: int, block_q: int, block_k: int) -> Plan:
    """The Plan of ``node`` classified block by block from the dense mask."""
    G = ir.head_counts(node)
    nqb, nkb = -(-nq // block_q), -(-nk // block_k)
    kind = np.zeros((G, nqb, nkb), dtype=np.int8)
    for g in range(G):
        m = np.zeros((nqb * block_q, nkb * block_k), dtype=bool)
        valid = np.zeros_like(m)
        m[:nq, :nk] = mask_np(ir.select_head(node, g, G), nq, nk)
        valid[:nq, :nk] = True
        cnt = m.reshape(nqb, block_q, nkb, block_k).sum((1, 3))
        tot = valid.reshape(nqb, block_q, nkb, block_k).sum((1, 3))
        kind[g] = np.where(cnt == 0, 0, np.where(cnt == tot, 2, 1))
    return Plan(nq, nk, block_q, block_k, G, _tables(kind), _tables(kind.transpose(0, 2, 1).copy()))


def ref_node(node: ir.Node) -> ir.Node:
    """``node`` without one-part ``heads(x)`` wrappers, which the reference mask rejects without
    a head count (a reference quirk: ``heads(x)`` with one part is ``x`` on every head)."""
    return ir.select_head(node, 0, 1) if ir.head_counts(node) == 1 else node


def full_mask(node: ir.Node, nq: int, nk: int, H: int) -> torch.Tensor:
    """``[H, nq, nk]`` boolean mask for any pattern (with or without heads)."""
    return node.mask(nq, nk=nk, heads=H)


def ref_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, node: ir.Node,
                scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference output (in q's dtype) and natural-log LSE (float32, -inf on empty rows)."""
    H, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    m = full_mask(node, nq, nk, H)
    rep = H // k.shape[1]
    s = (q.double() @ k.double().repeat_interleave(rep, 1).transpose(-1, -2)) * scale
    lse = torch.logsumexp(s.masked_fill(~m, -math.inf), -1)
    return ref_attention(q, k, v, ref_node(node), scale), lse.float()


def ref_grads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor, node: ir.Node,
              scale: float) -> tuple[torch.Tensor, ...]:
    """dQ, dK, dV of the reference attention (float64 inside)."""
    qq, kk, vv = (t.detach().double().requires_grad_() for t in (q, k, v))
    out = ref_attention(qq, kk, vv, ref_node(node), scale)
    return torch.autograd.grad(out, (qq, kk, vv), do.double())


TOL = {torch.float32: (2e-4, 2e-4), torch.float16: (2e-2, 2e-2), torch.bfloat16: (6e-2, 6e-2)}


def assert_close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """Compare at a tolerance scaled by the magnitude of the reference (gradients vary in size)."""
    atol, rtol = TOL[dtype]
    assert not torch.isnan(got).any(), f"{what}: NaN"
    scale = max(1.0, float(want.abs().max()))
    torch.testing.assert_close(got.double(), want.double(), atol=atol * scale, rtol=rtol,
                               msg=lambda m: f"{what}: {m}")


def chunked_ref_grads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor, node: ir.Node,
                      scale: float, chunk: int = 2048) -> tuple[torch.Tensor, ...]:
    """dQ, dK, dV by float64 autograd of the reference's formula over chunks of query rows.

    Rows are independent in attention, so summing the chunks' dK / dV is exact; this keeps the
    ``n x n`` float64 intermediates of 16k-token tests to ``chunk x n``. The mask is the reference's.
    """
    H, nq = q.shape[1], q.shape[2]
    nk, rep = k.shape[2], H // k.shape[1]
    m = full_mask(node, nq, nk, H)
    kk, vv = (t.detach().double().requires_grad_() for t in (k, v))
    dq = torch.empty(q.shape, dtype=torch.float64, device=q.device)
    for lo in range(0, nq, chunk):
        qc = q[:, :, lo:lo + chunk].detach().double().requires_grad_()
        mc = m[:, lo:lo + chunk].to(q.device)
        s = (qc @ kk.repeat_interleave(rep, 1).transpose(-1, -2)) * scale
        s = s.masked_fill(~mc, -math.inf)
        empty = ~mc.any(-1, keepdim=True)
        w = torch.softmax(s.masked_fill(empty, 0.0), dim=-1).masked_fill(~mc, 0.0)
        out = w @ vv.repeat_interleave(rep, 1)
        (out * do[:, :, lo:lo + chunk].double()).sum().backward()
        assert qc.grad is not None
        dq[:, :, lo:lo + chunk] = qc.grad
    assert kk.grad is not None and vv.grad is not None
    return dq, kk.grad, vv.grad


def dq_statistics_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two launches per step (``runtime.backward._FUSED = False``), and a failure if the
    preprocess pass runs: the dQ launches must compute the row statistics (``DQ_STATS``)."""
    rb = importlib.import_module("patternc.runtime.backward")

    def no_preprocess(*args: object) -> None:
        raise AssertionError("the preprocess ran")

    monkeypatch.setattr(rb, "_FUSED", False)
    monkeypatch.setattr(rb, "_preprocess", no_preprocess)
