"""IR node -> Triton boolean expression: the pattern's predicate for PARTIAL blocks.

One emitter per IR node. The expression is plain Triton source over these names (all overridable):

* ``p`` - query *positions*, an int32 tensor ``[BLOCK_M, 1]`` (``p = i + nk - nq``, SPEC section 1);
* ``j`` - key indices, an int32 tensor ``[1, BLOCK_N]``;
* ``i`` - query *row* indices ``[BLOCK_M, 1]`` (indexes the per-row tables below);
* ``nq`` / ``nk`` - the lengths, scalars (bound the table loads of tail rows / keys).

Its value broadcasts to ``[BLOCK_M, BLOCK_N]`` (or a broadcastable shape): True where the pair is in
the pattern. Key and row bounds (``j < nk``, ``i < nq``) are NOT part of it: the kernel adds them.

Integer semantics: Triton's ``//`` and ``%`` truncate (C), SPEC's floor. ``j >= 0`` always, so
``j // b`` is exact; ``p`` is negative when ``nq > nk``, so ``p // b`` goes through the
:data:`PRELUDE` helper ``floordiv``; ``d % r == 0`` does not depend on the sign convention.

Random primitives and long token lists read int32 tables passed as extra kernel pointer args
(:class:`TableArg`, built by :func:`build_table` from ``patternc.rng``: they are the pattern's
definition, evaluated for the rows a call needs). A generated module must contain :data:`PRELUDE`
and pass each table of ``Predicate.tables`` as a pointer argument named ``TableArg.name``::

    >>> from patternc import ir
    >>> emit(ir.Band(2) & ir.Causal()).expr
    '(((j >= p - 2) & (j <= p + 2)) & (j <= p))'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from patternc import ir
from patternc.rng import random_key_blocks, random_keys

# Token lists with more disjoint intervals than this read a membership table instead of a
# chain of comparisons (keeps generated code short; one load per row or key).
MAX_INLINE_INTERVALS = 8

PRELUDE = '''
@triton.jit
def floordiv(a, b: tl.constexpr):
    """Python's a // b for a positive constant b (Triton's // truncates toward zero)."""
    return tl.where(a >= 0, a // b, -((b - 1 - a) // b))
'''
"""Triton helpers that emitted expressions may call; include once per generated module."""

TableKind = Literal["random_keys", "random_blocks", "rows_member", "cols_member"]


@dataclass(frozen=True)
class TableArg:
    """An int32 table a predicate reads, passed to the kernel as pointer argument ``name``.

    * ``random_keys``: ``[nq, width]``, row ``i`` the keys of ``random(r, seed)`` at position
      ``i + nk - nq``, padded with -1 (``width = r``, so the source does not depend on ``nk``);
    * ``random_blocks``: ``[nq, width]``, row ``i`` the key blocks of its query block, padded with -1;
    * ``rows_member``: ``[nq]``, 1 where the position of row ``i`` is in ``node.tokens``;
    * ``cols_member``: ``[nk]``, 1 where key ``j`` is in ``node.tokens``.
    """

    name: str
    kind: TableKind
    node: ir.Node
    width: int = 1


@dataclass(frozen=True)
class Predicate:
    """A Triton boolean expression and the tables it reads."""

    expr: str
    tables: tuple[TableArg, ...] = ()


@dataclass(frozen=True)
class _Names:
    p: str
    j: str
    i: str
    nq: str
    nk: str
    prefix: str


# A partial result: a constant (True / False, folded away by the operators) or an expression.
_Val = bool | str


def emit(node: ir.Node, p: str = "p", j: str = "j", i: str = "i", nq: str = "nq", nk: str = "nk",
         table_prefix: str = "tab") -> Predicate:
    """The predicate of a concrete, head-free pattern (see the module docstring for the names).

    Raises ``PatternError`` on ``heads(...)`` (select a head group first: ``ir.select_head``) or on
    symbolic arguments (``ir.concretize`` first). Tables are named ``{table_prefix}0``, ... .
    """
    names = _Names(p, j, i, nq, nk, table_prefix)
    tables: list[TableArg] = []
    val = _emit(node, names, tables)
    if val is True:
        expr = f"(({p} == {p}) & ({j} == {j}))"
    elif val is False:
        expr = f"(({p} != {p}) & ({j} != {j}))"
    else:
        expr = val
    return Predicate(expr, tuple(tables))


def _int(x: ir.Int) -> int:
    if not isinstance(x, int):
        raise ir.PatternError(f"symbolic argument {x} in the predicate: concretize the pattern first")
    return x


def _intervals(tokens: ir.TokenList) -> list[tuple[int, int]]:
    """Sorted, merged half-open intervals of a concrete token list."""
    spans = sorted((_int(a), _int(b)) for a, b in _concrete_intervals(tokens) if a < b)
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _concrete_intervals(tokens: ir.TokenList) -> list[tuple[int, int]]:
    out = []
    for it in tokens.items:
        if isinstance(it, ir.Range):
            out.append((_int(it.start), _int(it.stop)))
        else:
            out.append((_int(it), _int(it) + 1))
    return out


def _in(x: str, tokens: ir.TokenList, kind: TableKind, node: ir.Node, names: _Names,
        tables: list[TableArg]) -> _Val:
    spans = _intervals(tokens)
    if not spans:
        return False
    if len(spans) > MAX_INLINE_INTERVALS:
        t = _table(kind, node, 1, names, tables)
        if kind == "rows_member":
            return f"(tl.load({t} + {names.i}, mask={names.i} < {names.nq}, other=0) != 0)"
        return f"(tl.load({t} + {names.j}, mask={names.j} < {names.nk}, other=0) != 0)"
    terms = [f"({x} == {a})" if b == a + 1 else f"(({x} >= {a}) & ({x} < {b}))" for a, b in spans]
    return terms[0] if len(terms) == 1 else "(" + " | ".join(terms) + ")"


def _table(kind: TableKind, node: ir.Node, width: int, names: _Names, tables: list[TableArg]) -> str:
    for t in tables:  # the same primitive twice in a tree reads one table
        if t.kind == kind and t.node == node:
            return t.name
    t = TableArg(f"{names.prefix}{len(tables)}", kind, node, width)
    tables.append(t)
    return t.name


def _random(node: ir.Node, r: int, target: str, kind: TableKind, names: _Names,
            tables: list[TableArg]) -> _Val:
    if r <= 0:
        return False
    t = _table(kind, node, r, names, tables)
    i = names.i
    row = f"tl.load({t} + {i} * {r} + {{s}}, mask={i} < {names.nq}, other=-1)"
    return "(" + " | ".join(f"({row.format(s=s)} == {target})" for s in range(r)) + ")"


def _or(vals: list[_Val]) -> _Val:
    if any(v is True for v in vals):
        return True
    exprs = [v for v in vals if v is not False]
    if not exprs:
        return False
    return exprs[0] if len(exprs) == 1 else "(" + " | ".join(str(e) for e in exprs) + ")"


def _and(vals: list[_Val]) -> _Val:
    if any(v is False for v in vals):
        return False
    exprs = [v for v in vals if v is not True]
    if not exprs:
        return True
    return exprs[0] if len(exprs) == 1 else "(" + " & ".join(str(e) for e in exprs) + ")"


def _not(v: _Val) -> _Val:
    return (not v) if isinstance(v, bool) else f"(~{v})"


def _emit(node: ir.Node, n: _Names, tables: list[TableArg]) -> _Val:
    p, j = n.p, n.j
    match node:
        case ir.Full():
            return True
        case ir.Empty():
            return False
        case ir.Causal():
            return f"({j} <= {p})"
        case ir.Window(left, right):
            return f"(({j} >= {p} - {_int(left)}) & ({j} <= {p} + {_int(right)}))"
        case ir.Band(w):
            return f"(({j} >= {p} - {_int(w)}) & ({j} <= {p} + {_int(w)}))"
        case ir.Dilated(w, r):
            w, r = _int(w), _int(r)
            reach = f"(({j} >= {p} - {w * r}) & ({j} <= {p} + {w * r}))"
            return reach if r == 1 else f"({reach} & ((({p} - {j}) % {r}) == 0))"
        case ir.Strided(s):
            return True if _int(s) == 1 else f"((({p} - {j}) % {_int(s)}) == 0)"
        case ir.Blocks(b):
            b = _int(b)
            return f"({j} == {p})" if b == 1 else f"(floordiv({p}, {b}) == ({j} // {b}))"
        case ir.Fixed(l, c):
            l, c = _int(l), _int(c)
            return _or([f"(floordiv({p}, {l}) == ({j} // {l}))", f"(({j} % {l}) >= {l - c})"])
        case ir.Rows(tokens):
            return _in(p, tokens, "rows_member", node, n, tables)
        case ir.Cols(tokens):
            return _in(j, tokens, "cols_member", node, n, tables)
        case ir.Global(tokens):
            return _or([_in(p, tokens, "rows_member", ir.Rows(tokens), n, tables),
                        _in(j, tokens, "cols_member", ir.Cols(tokens), n, tables)])
        case ir.Prefix(m):
            return f"(({p} < {_int(m)}) & ({j} < {_int(m)}))"
        case ir.Steps(lq, lk, shift):
            # p + shift is the physical position (>= 0 when nk >= nq); floordiv keeps floor anyway
            return f"(({j} // {_int(lk)}) < floordiv({p} + {_int(shift)}, {_int(lq)}))"
        case ir.Random(r, _seed):
            return _random(node, _int(r), j, "random_keys", n, tables)
        case ir.RandomBlocks(r, b, _seed):
            return _random(node, _int(r), f"({j} // {_int(b)})", "random_blocks", n, tables)
        case ir.Union(parts):
            return _or([_emit(c, n, tables) for c in parts])
        case ir.Intersect(parts):
            return _and([_emit(c, n, tables) for c in parts])
        case ir.Diff(a, b):
            return _and([_emit(a, n, tables), _not(_emit(b, n, tables))])
        case ir.Complement(a):
            return _not(_emit(a, n, tables))
        case ir.Heads():
            raise ir.PatternError("heads(...) has one predicate per head group: use ir.select_head first")
    raise TypeError(f"no predicate emitter for {node!r}")


def _matching_paren(text: str) -> int:
    """Index of the ``)`` closing the ``(`` at ``text[0]``."""
    depth = 0
    for k, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return k
    return -1


def _split_top(inner: str) -> tuple[str, list[str]]:
    """Split ``inner`` at its depth-0 ``" | "`` / ``" & "`` (the emitter uses one kind per group)."""
    depth, start, parts, op = 0, 0, [], ""
    for k, ch in enumerate(inner):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and inner[k:k + 3] in (" | ", " & "):
            op = inner[k + 1]
            parts.append(inner[start:k])
            start = k + 3
    return op, [*parts, inner[start:]]


def wrap(expr: str, indent: int, width: int = 100) -> str:
    """``expr`` broken over lines at its top-level ``|`` / ``&`` operands where it is longer than
    ``width`` (continuation lines start at column ``indent``); the same expression to Python."""
    if indent + len(expr) <= width or not expr.startswith("(") or _matching_paren(expr) != len(expr) - 1:
        return expr
    op, parts = _split_top(expr[1:-1])
    if len(parts) < 2:
        return expr
    lines = [wrap(part, indent + 3, width) for part in parts]
    return "(" + f"\n{' ' * (indent + 1)}{op} ".join(lines) + ")"


def build_table(arg: TableArg, nq: int, nk: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The int32 contents of ``arg`` for a call with lengths ``(nq, nk)`` (see :class:`TableArg`)."""
    pos = np.arange(nq, dtype=np.int64) + (nk - nq)
    node = arg.node
    if arg.kind == "rows_member" or arg.kind == "cols_member":
        x = pos if arg.kind == "rows_member" else np.arange(nk, dtype=np.int64)
        hit = np.zeros(x.shape, dtype=np.int32)
        for a, b in _intervals(node.tokens):  # type: ignore[attr-defined]
            hit |= (x >= a) & (x < b)
        out = hit
    else:
        out = np.full((nq, arg.width), -1, dtype=np.int64)
        if isinstance(node, ir.Random):
            got = random_keys(_int(node.r), _int(node.seed), pos, nk)
        elif isinstance(node, ir.RandomBlocks):
            b = _int(node.b)
            qb = np.floor_divide(pos, b)
            uniq, inv = np.unique(qb, return_inverse=True)
            got = random_key_blocks(_int(node.r), b, _int(node.seed), uniq, nk)[inv.reshape(-1)]
        else:
            raise TypeError(f"no table for {node!r}")
        out[:, :got.shape[1]] = got
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.int32)).to(device)
