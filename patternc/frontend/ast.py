"""The syntax tree of a ``.sap`` file: frozen dataclasses that keep their source spans.

The tree is untyped on purpose: whether ``a - b`` subtracts integers or patterns is decided by
resolution (``resolve.py``), which is where every semantic diagnostic is raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from patternc.diagnostics import Span

MAX_DIGITS = 19  # integer literals longer than this cannot be 64-bit integers


@dataclass(frozen=True)
class IntLit:
    value: int | None  # None: too many digits
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    span: Span  # the keyword name


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span
    func_span: Span
    # a positional argument written after a keyword one (reported by resolution)
    misplaced: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class RangeItem:
    start: Expr
    stop: Expr
    span: Span


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr | RangeItem, ...]
    span: Span


@dataclass(frozen=True)
class BinExpr:
    op: str  # | & + - * // % /
    left: Expr
    right: Expr
    span: Span
    op_span: Span


@dataclass(frozen=True)
class UnaryExpr:
    op: str  # - ~
    operand: Expr
    span: Span


Expr = IntLit | Name | Call | ListExpr | BinExpr | UnaryExpr


@dataclass(frozen=True)
class Import:
    target: str  # a path (relative to the file) or a stdlib name
    is_path: bool
    span: Span


@dataclass(frozen=True)
class Let:
    name: str
    name_span: Span
    value: Expr
    span: Span


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class PatternDecl:
    name: str
    name_span: Span
    params: tuple[Param, ...]
    body: Expr
    span: Span


Stmt = Import | Let | PatternDecl


@dataclass(frozen=True)
class Module:
    stmts: tuple[Stmt, ...]
