"""Shared pieces of the GPU dev scripts in this folder (run as ``python benchmarks/dev/<script>.py``)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import triton

import patternc
from patternc import ir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from suite import configure_dynamo

B, H, DT = 1, 16, torch.bfloat16


def median_ms(fn: Callable[[], Any]) -> float:
    """``triton.testing.do_bench`` median of ``fn`` in ms (L2 flushed between runs)."""
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def forward_rounds(node: ir.Node, variants: Sequence[str], use: Callable[[str], None], q: torch.Tensor,
                   k: torch.Tensor, v: torch.Tensor, rounds: int) -> dict[str, Any]:
    """Each variant's forward of ``node`` (``use(variant)`` switches to it), rounds alternating:
    ``ms`` (per variant, its ``do_bench`` median of each round) and ``err`` (the max abs difference
    of its output from the first variant's)."""
    rf = importlib.import_module("patternc.runtime.forward")  # the package exports a function of that name
    row: dict[str, Any] = {"ms": {}, "err": {}}
    ref = None
    for _ in range(rounds):
        for variant in variants:
            use(variant)
            o = rf.forward(q, k, v, node)[0]
            ref = o if ref is None else ref
            row["err"][variant] = float((o.float() - ref.float()).abs().max())
            row["ms"].setdefault(variant, []).append(round(median_ms(lambda: rf.forward(q, k, v, node)), 4))
    return row


def forward_ab(variants: Sequence[str], use: Callable[[str], None], json_name: str, n: int, d: int,
               rounds: int, only: Sequence[str]) -> None:
    """:func:`forward_rounds` on every suite pattern that ``only`` selects (all when empty), on
    random inputs ``[1, H, n, d]``; each row also gets ``first_over`` (per variant, the first
    variant's best median over its own) and goes to ``$OUT/<json_name>``."""
    from suite_core import all_cases, select

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, n, d, device="cuda", dtype=DT) for _ in range(3))
    rows: list[dict[str, Any]] = []
    for case in select(all_cases(), list(only) or None):
        row = {"pattern": case.label, "n": n, "d": d,
               **forward_rounds(case.node, variants, use, q, k, v, rounds)}
        best = {name: min(t) for name, t in row["ms"].items()}
        row["first_over"] = {name: round(best[variants[0]] / t, 3) for name, t in best.items()}
        add_row(rows, row, json_name)


def node_of(text: str) -> ir.Node:
    """``file/name`` of a stdlib pattern (its defaults), else ``.sap`` expression text."""
    if "/" in text:
        path, name = text.split("/")
        node: ir.Node = patternc.load(f"patternc/stdlib_patterns/{path}.sap")[name]()
        return node
    return patternc.pattern(text)


def partial_first(text: str) -> str:
    """The forward template (``codegen.forward._KERNEL``) with its PARTIAL-tile loop before the
    FULL-tile one (the loop-per-kind branch: since session 16 rows of both kinds run one loop,
    ``runtime.forward.ONE_LOOP``, which this leaves alone)."""
    head, rest = text.split("    for t in range(tl.load(WORK + w * 8 + 1)", 1)
    full, rest = rest.split("    for t in range(tl.load(WORK + w * 8 + 3)", 1)
    part, tail = rest.split("    if slot < 0:", 1)
    full = "    for t in range(tl.load(WORK + w * 8 + 1)" + full
    part = "    for t in range(tl.load(WORK + w * 8 + 3)" + part
    return head + part + full + "    if slot < 0:" + tail


def trans_k(text: str) -> str:
    """The forward template with K loaded as [BLOCK_N, D] and transposed in registers
    (FlexAttention's form, and ``tma_fwd.py``'s)."""
    for a, b in (("kt_ptr = Kh + jn[None, :] * skn + offs_d[:, None] * skd",
                  "kt_ptr = Kh + jn[:, None] * skn + offs_d[None, :] * skd"),
                 ("kt = tl.load(kt_ptr){up}", "kt = tl.trans(tl.load(kt_ptr)){up}"),
                 ("kt = tl.load(kt_ptr, mask=kv_ok[None, :], other=0.0){up}",
                  "kt = tl.trans(tl.load(kt_ptr, mask=kv_ok[:, None], other=0.0)){up}"),
                 ("kt = tl.load(kt_ptr, mask=kv_ok[None, :] & (offs_d[:, None] < HEAD_DIM), other=0.0){up}",
                  "kt = tl.trans(tl.load(kt_ptr, mask=kv_ok[:, None] & (offs_d[None, :] < HEAD_DIM), "
                  "other=0.0)){up}")):
        assert a in text, a
        text = text.replace(a, b)
    return text


def with_flex(text: str, n: int, q: torch.Tensor, k: torch.Tensor,
              v: torch.Tensor) -> tuple[ir.Node, Any, tuple[torch.Tensor, ...]]:
    """The pattern, its FlexAttention BlockMask (``to_flex``) and leaf copies of q, k, v that
    require grad."""
    from patternc.flex import to_flex

    node = node_of(text)
    heads = H if ir.head_counts(node) > 1 else None
    leaves = tuple(t.detach().requires_grad_() for t in (q, k, v))
    return node, to_flex(node, n, heads=heads, device="cuda"), leaves


def add_row(rows: list[dict[str, Any]], row: dict[str, Any], json_name: str,
            show: Callable[[dict[str, Any]], str] | None = None) -> None:
    """Append ``row`` (printed when ``show`` is None; the caller printed it otherwise) and write
    the rows so far, with the GPU and versions, to ``$OUT/<json_name>``."""
    if show is None:
        print(json.dumps(row), flush=True)
    rows.append(row)
    with open(os.path.join(os.environ.get("OUT", "."), json_name), "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                   "triton": triton.__version__, "rows": rows}, f, indent=1)


def block_local_refs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Iterator[
        tuple[bool, torch.Tensor, torch.Tensor, dict[str, Any]]]:
    """For ``blocks(256) & causal`` then ``blocks(256)``: whether causal, our forward's output and
    LSE on ``q, k, v`` ``[1, H, n, D]`` (what stand-alone kernels are checked against), and a row
    that holds our forward's time."""
    rf = importlib.import_module("patternc.runtime.forward")  # the package exports a function of that name
    for name, causal in (("block_local/block_local_causal", True), ("block_local/block_local", False)):
        node = node_of(name)
        ref, ref_lse = rf.forward(q, k, v, node)
        row = {"pattern": name, "n": q.shape[2], "d": q.shape[3],
               "ours": median_ms(lambda node=node: rf.forward(q, k, v, node))}
        yield causal, ref, ref_lse, row


RowFn = Callable[[str, Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict[str, Any]]


def gpu_rows(patterns: list[str], n: int, d: int, row_fn: RowFn, json_name: str,
             show: Callable[[dict[str, Any]], str] = lambda r: json.dumps(r, indent=1)) -> None:
    """``row_fn(pattern, compiled flex_attention, q, k, v, do)`` per pattern on random bf16 inputs
    ``[B, H, n, d]``; each row printed and the rows so far written to ``$OUT/<json_name>``."""
    from torch.nn.attention.flex_attention import flex_attention

    configure_dynamo()
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)
    q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=DT) for _ in range(4))
    rows = []
    for text in patterns:
        row = row_fn(text, flex, q, k, v, do)
        print(show(row), flush=True)
        add_row(rows, row, json_name, show)
