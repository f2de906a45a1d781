"""The pattern IR: a small algebra of frozen, hashable dataclasses.

A pattern is a set of (query, key) pairs (SPEC section 1). Primitives carry integer arguments
that are either plain ``int`` or a symbolic :class:`IntExpr` in ``n`` (the key length); token
lists are :class:`TokenList`. Python operators build the same trees as the ``.sap`` operators::

    >>> from patternc.ir import Band, Global, TokenList, Causal
    >>> p = (Band(256) | Global(TokenList.of(0))) & Causal()
    >>> print(p)
    (band(256) | global([0])) & causal

``|`` and ``&`` flatten, so ``a | b | c`` and ``a | (b | c)`` are the same ``Union`` node and
``print`` / parse round-trip exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import ClassVar, TypeAlias

# --------------------------------------------------------------------------- integer expressions


class PatternError(ValueError):
    """A pattern that cannot be evaluated (argument out of range once ``n`` is known, ...)."""


@dataclass(frozen=True)
class IntExpr:
    """Base of symbolic integer expressions in ``n``; concrete values are plain ``int``."""

    def eval(self, n: int) -> int:
        raise NotImplementedError

    def __int__(self) -> int:
        # lets concrete-only stages write int(arg); a symbolic argument must be concretized first
        raise PatternError(f"{self.sap()} depends on n: concretize the pattern first")

    def __str__(self) -> str:
        return self.sap()

    def sap(self, prec: int = 0) -> str:
        raise NotImplementedError


Int: TypeAlias = int | IntExpr


@dataclass(frozen=True)
class N(IntExpr):
    """The key length ``nk``."""

    def eval(self, n: int) -> int:
        return n

    def sap(self, prec: int = 0) -> str:
        return "n"


@dataclass(frozen=True)
class Neg(IntExpr):
    a: Int

    def eval(self, n: int) -> int:
        return -eval_int(self.a, n)

    def sap(self, prec: int = 0) -> str:
        s = "-" + int_sap(self.a, 3)
        return f"({s})" if prec > 3 else s


# binding strength of the binary operators, as in Python
_PREC = {"+": 1, "-": 1, "*": 2, "//": 2, "%": 2}


@dataclass(frozen=True)
class BinOp(IntExpr):
    op: str  # one of + - * // %
    a: Int
    b: Int

    def eval(self, n: int) -> int:
        x, y = eval_int(self.a, n), eval_int(self.b, n)
        if self.op == "+":
            return x + y
        if self.op == "-":
            return x - y
        if self.op == "*":
            return x * y
        if y == 0:
            raise PatternError(f"division by zero in {self.sap()} at n={n}")
        return x // y if self.op == "//" else x % y

    def sap(self, prec: int = 0) -> str:
        p = _PREC[self.op]
        # left-associative: the right operand needs parentheses at equal precedence
        s = f"{int_sap(self.a, p)} {self.op} {int_sap(self.b, p + 1)}"
        return f"({s})" if prec > p else s


@dataclass(frozen=True)
class Func(IntExpr):
    name: str  # sqrt, log2, min, max
    args: tuple[Int, ...]

    def eval(self, n: int) -> int:
        xs = [eval_int(a, n) for a in self.args]
        if self.name == "sqrt":
            if xs[0] < 0:
                raise PatternError(f"sqrt of a negative number ({xs[0]}) at n={n}")
            return math.isqrt(xs[0])
        if self.name == "log2":
            if xs[0] < 1:
                raise PatternError(f"log2 needs x >= 1, got {xs[0]} at n={n}")
            return xs[0].bit_length() - 1
        if self.name == "min":
            return min(xs)
        if self.name == "max":
            return max(xs)
        raise PatternError(f"unknown function {self.name}")

    def sap(self, prec: int = 0) -> str:
        return f"{self.name}({', '.join(int_sap(a) for a in self.args)})"


def eval_int(x: Int, n: int) -> int:
    return x if isinstance(x, int) else x.eval(n)


def int_sap(x: Int, prec: int = 0) -> str:
    if isinstance(x, int):
        s = str(x)
        return f"({s})" if x < 0 and prec > 0 else s
    return x.sap(prec)


def is_symbolic(x: object) -> bool:
    """True when ``x`` (an argument, list or node) depends on ``n``."""
    if isinstance(x, int):
        return False
    if isinstance(x, N):
        return True
    if isinstance(x, (IntExpr, TokenList, Range, Node)):
        return any(is_symbolic(getattr(x, f.name)) for f in fields(x))
    if isinstance(x, tuple):
        return any(is_symbolic(e) for e in x)
    return False


# --------------------------------------------------------------------------- token lists


@dataclass(frozen=True)
class Range:
    """The half-open range ``start..stop``."""

    start: Int
    stop: Int

    def sap(self) -> str:
        return f"{int_sap(self.start, 1)}..{int_sap(self.stop, 1)}"


@dataclass(frozen=True)
class TokenList:
    """A list of token positions: integers and ``a..b`` ranges (SPEC section 2)."""

    items: tuple[Int | Range, ...]

    @staticmethod
    def of(*items: Int | Range) -> TokenList:
        return TokenList(tuple(items))

    @staticmethod
    def range(start: Int, stop: Int) -> TokenList:
        return TokenList((Range(start, stop),))

    def intervals(self, n: int) -> list[tuple[int, int]]:
        """The list as half-open ``[a, b)`` intervals at key length ``n`` (unsorted, may overlap)."""
        out = []
        for it in self.items:
            if isinstance(it, Range):
                a, b = eval_int(it.start, n), eval_int(it.stop, n)
                if a < b:
                    out.append((a, b))
            else:
                v = eval_int(it, n)
                out.append((v, v + 1))
        return out

    def sap(self) -> str:
        return "[" + ", ".join(it.sap() if isinstance(it, Range) else int_sap(it) for it in self.items) + "]"


# --------------------------------------------------------------------------- pattern nodes


@dataclass(frozen=True)
class Node:
    """Base of every pattern node. Operators build IR; methods reach the later stages."""

    name: ClassVar[str] = ""

    # -- operators (flattening, so that printing and parsing round-trip)
    def __or__(self, other: Node) -> Node:
        return Union(_flat(Union, self) + _flat(Union, _check(other)))

    def __and__(self, other: Node) -> Node:
        return Intersect(_flat(Intersect, self) + _flat(Intersect, _check(other)))

    def __sub__(self, other: Node) -> Node:
        return Diff(self, _check(other))

    def __invert__(self) -> Node:
        return Complement(self)

    def children(self) -> tuple[Node, ...]:
        return ()

    def walk(self) -> Iterator[Node]:
        """Pre-order traversal of the tree."""
        yield self
        for c in self.children():
            yield from c.walk()

    def __str__(self) -> str:
        return self.sap()

    def sap(self, prec: int = 0) -> str:
        """Canonical ``.sap`` text: ``parse(p.sap()) == p``."""
        args = [int_sap(getattr(self, f.name)) if not isinstance(getattr(self, f.name), TokenList)
                else getattr(self, f.name).sap() for f in fields(self)]
        args = _trim_defaults(self, args)
        return self.name if not args and not _needs_parens(self) else f"{self.name}({', '.join(args)})"

    # -- later stages (imported lazily: the IR is the bottom of the dependency graph)
    def mask(self, n: int, nk: int | None = None, heads: int | None = None):  # type: ignore[no-untyped-def]
        """The reference boolean mask ``[nq, nk]`` (``[H, nq, nk]`` with ``heads``) as torch.bool."""
        from patternc.reference import mask

        return mask(self, n, nk=nk, heads=heads)

    def report(self, n: int, **kwargs):  # type: ignore[no-untyped-def]
        """The report of SPEC section 4 for key length ``n``."""
        from patternc.analysis import report

        return report(self, n, **kwargs)

    def plan(self, nq: int, nk: int | None = None, **kwargs):  # type: ignore[no-untyped-def]
        """The block-sparse Plan (see patternc.plan) at these lengths."""
        from patternc.lower import lower

        return lower(self, nq, nq if nk is None else nk, **kwargs)

    def to_flex(self, nq: int, nk: int | None = None, **kwargs):  # type: ignore[no-untyped-def]
        """A FlexAttention ``BlockMask`` built from the plan (no dense evaluation)."""
        from patternc.flex import to_flex

        return to_flex(self, nq, nk, **kwargs)


def _check(x: object) -> Node:
    if not isinstance(x, Node):
        node = getattr(x, "node", None)  # a frontend PatternDef stands for its default-bound pattern
        if isinstance(node, Node):
            return node
        raise TypeError(f"cannot combine a pattern with {type(x).__name__}")
    return x


def _needs_parens(node: Node) -> bool:
    # primitives with arguments always print their parentheses, even when all are defaults
    return bool(fields(node))


def _trim_defaults(node: Node, args: list[str]) -> list[str]:
    # `random(3, seed=0)` prints as `random(3)`; any other seed is written as a keyword
    if isinstance(node, (Random, RandomBlocks)):
        if node.seed == 0:
            return args[:-1]
        return [*args[:-1], f"seed={args[-1]}"]
    return args


# precedence of pattern operators: | < & < - < ~ (Python's)
_P_UNION, _P_INTER, _P_DIFF, _P_NOT = 1, 2, 3, 4


@dataclass(frozen=True)
class Full(Node):
    name: ClassVar[str] = "full"


@dataclass(frozen=True)
class Empty(Node):
    name: ClassVar[str] = "empty"


@dataclass(frozen=True)
class Causal(Node):
    name: ClassVar[str] = "causal"


@dataclass(frozen=True)
class Window(Node):
    """``-right <= d <= left``."""

    name: ClassVar[str] = "window"
    left: Int
    right: Int


@dataclass(frozen=True)
class Band(Node):
    """``abs(d) <= w``."""

    name: ClassVar[str] = "band"
    w: Int


@dataclass(frozen=True)
class Dilated(Node):
    """``abs(d) <= w*r and d % r == 0``."""

    name: ClassVar[str] = "dilated"
    w: Int
    r: Int


@dataclass(frozen=True)
class Strided(Node):
    """``d % s == 0``."""

    name: ClassVar[str] = "strided"
    s: Int


@dataclass(frozen=True)
class Blocks(Node):
    """``p // b == j // b``."""

    name: ClassVar[str] = "blocks"
    b: Int


@dataclass(frozen=True)
class Fixed(Node):
    """``blocks(l) or j % l >= l - c``."""

    name: ClassVar[str] = "fixed"
    l: Int
    c: Int


@dataclass(frozen=True)
class Rows(Node):
    """Queries at positions in ``tokens`` see every key."""

    name: ClassVar[str] = "rows"
    tokens: TokenList


@dataclass(frozen=True)
class Cols(Node):
    """Every query sees the keys in ``tokens``."""

    name: ClassVar[str] = "cols"
    tokens: TokenList


@dataclass(frozen=True)
class Global(Node):
    """``rows(tokens) | cols(tokens)``."""

    name: ClassVar[str] = "global"
    tokens: TokenList


@dataclass(frozen=True)
class Prefix(Node):
    """``p < m and j < m``."""

    name: ClassVar[str] = "prefix"
    m: Int


@dataclass(frozen=True)
class Random(Node):
    """``min(r, nk)`` distinct keys per position, a pure function of ``(seed, p, nk)``."""

    name: ClassVar[str] = "random"
    r: Int
    seed: Int = 0


@dataclass(frozen=True)
class RandomBlocks(Node):
    """Key blocks of size ``b`` drawn per query block ``p // b`` (BigBird)."""

    name: ClassVar[str] = "random_blocks"
    r: Int
    b: Int
    seed: Int = 0


@dataclass(frozen=True)
class Steps(Node):
    """Internal, not in the grammar (``patternc.runtime.summary``): ``j // lk < (p + shift) // lq``.

    The summary keys of ``fixed(lq, lk)`` gathered into a compact K / V (key ``t`` is the
    ``t``-th summary key, ``lk`` per block of ``lq``) and ``shift`` the physical key length minus
    the compact one: a query sees the summary keys of the blocks before its own. Its text starts
    with ``$``, which no ``.sap`` source can contain, so it never collides with real syntax.
    """

    name: ClassVar[str] = "$steps"
    lq: Int
    lk: Int
    shift: Int


@dataclass(frozen=True)
class Heads(Node):
    """Head ``h`` of ``H`` follows ``parts[h * k // H]``."""

    name: ClassVar[str] = "heads"
    parts: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.parts

    def sap(self, prec: int = 0) -> str:
        return f"heads({', '.join(p.sap() for p in self.parts)})"


@dataclass(frozen=True)
class Union(Node):
    parts: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.parts

    def sap(self, prec: int = 0) -> str:
        s = " | ".join(p.sap(_P_UNION + 1) for p in self.parts)
        return f"({s})" if prec > _P_UNION else s


@dataclass(frozen=True)
class Intersect(Node):
    parts: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.parts

    def sap(self, prec: int = 0) -> str:
        s = " & ".join(p.sap(_P_INTER + 1) for p in self.parts)
        return f"({s})" if prec > _P_INTER else s


@dataclass(frozen=True)
class Diff(Node):
    a: Node
    b: Node

    def children(self) -> tuple[Node, ...]:
        return (self.a, self.b)

    def sap(self, prec: int = 0) -> str:
        # left-associative: `a - b - c` is `(a - b) - c`; the right side needs parentheses
        s = f"{self.a.sap(_P_DIFF)} - {self.b.sap(_P_DIFF + 1)}"
        return f"({s})" if prec > _P_DIFF else s


@dataclass(frozen=True)
class Complement(Node):
    a: Node

    def children(self) -> tuple[Node, ...]:
        return (self.a,)

    def sap(self, prec: int = 0) -> str:
        return f"~{self.a.sap(_P_NOT)}"


def _flat(kind: type, node: Node) -> tuple[Node, ...]:
    return node.parts if isinstance(node, kind) else (node,)  # type: ignore[attr-defined]


PRIMITIVES: dict[str, type[Node]] = {
    cls.name: cls
    for cls in (Full, Empty, Causal, Window, Band, Dilated, Strided, Blocks, Fixed, Rows, Cols, Global,
                Prefix, Random, RandomBlocks)
}
"""Primitive name -> node class; the dataclass fields are the SPEC's argument names, in order."""


# --------------------------------------------------------------------------- helpers for later stages


def map_children(node: Node, fn) -> Node:  # type: ignore[no-untyped-def]
    """Rebuild ``node`` with ``fn`` applied to each child (no flattening: structure is kept)."""
    if isinstance(node, (Union, Intersect, Heads)):
        return type(node)(tuple(fn(c) for c in node.parts))
    if isinstance(node, Diff):
        return Diff(fn(node.a), fn(node.b))
    if isinstance(node, Complement):
        return Complement(fn(node.a))
    return node


def map_children_or_none(node: Node, fn) -> Node | None:  # type: ignore[no-untyped-def]
    """:func:`map_children` for a partial ``fn``: None as soon as ``fn`` has no result (None) for
    one of the children."""
    kids = [fn(c) for c in node.children()]
    if any(k is None for k in kids):
        return None
    it = iter(kids)
    return map_children(node, lambda _: next(it))


def head_counts(node: Node) -> int:
    """The least common multiple of the sizes of every ``heads(...)``: the number of distinct
    head groups. Head ``h`` of ``H`` belongs to group ``h * L // H`` (exact for every nested
    ``heads``, since ``H`` is a multiple of ``L``)."""
    lcm = 1
    for sub in node.walk():
        if isinstance(sub, Heads):
            lcm = math.lcm(lcm, len(sub.parts))
    return lcm


def select_head(node: Node, group: int, groups: int) -> Node:
    """The head-free pattern followed by head group ``group`` of ``groups`` (see head_counts)."""
    if isinstance(node, Heads):
        k = len(node.parts)
        return select_head(node.parts[group * k // groups], group, groups)
    return map_children(node, lambda c: select_head(c, group, groups))


def check_heads(node: Node, heads: int) -> None:
    """Raise PatternError unless ``heads`` is a multiple of every ``heads(...)`` size."""
    for sub in node.walk():
        if isinstance(sub, Heads) and heads % len(sub.parts):
            k = len(sub.parts)
            raise PatternError(f"{heads} heads is not a multiple of the {k} parts of {sub.sap()}")


def head_groups(node: Node, heads: int | None) -> list[Node]:
    """One head-free pattern per head (``heads`` given) or the single pattern (``None``)."""
    if heads is None:
        if head_counts(node) != 1:
            raise PatternError("a heads(...) pattern needs the number of heads")
        return [select_head(node, 0, 1)]  # strips one-part heads(x) wrappers
    check_heads(node, heads)
    g = head_counts(node)
    return [select_head(node, h * g // heads, g) for h in range(heads)]


def concretize(node: Node, n: int) -> Node:
    """Substitute the key length ``n`` into every symbolic argument (lists stay lists)."""
    if isinstance(node, (Union, Intersect, Heads, Diff, Complement)):
        return map_children(node, lambda c: concretize(c, n))
    vals = {}
    for f in fields(node):
        v = getattr(node, f.name)
        if isinstance(v, TokenList):
            v = TokenList(tuple(Range(eval_int(it.start, n), eval_int(it.stop, n)) if isinstance(it, Range)
                                else eval_int(it, n) for it in v.items))
        else:
            v = eval_int(v, n)
        vals[f.name] = v
    return type(node)(**vals)


# argument ranges of SPEC section 1, checked once arguments are concrete
_RANGES: dict[type, list[tuple[str, int]]] = {
    Window: [("left", 0), ("right", 0)],
    Band: [("w", 0)],
    Dilated: [("w", 0), ("r", 1)],
    Strided: [("s", 1)],
    Blocks: [("b", 1)],
    Fixed: [("l", 1), ("c", 1)],
    Prefix: [("m", 0)],
    Random: [("r", 0)],
    RandomBlocks: [("r", 0), ("b", 1)],
    Steps: [("lq", 1), ("lk", 1), ("shift", 0)],
}


def argument_errors(node: Node) -> list[str]:
    """Messages for every concrete argument out of its SPEC range (symbolic ones are skipped)."""
    errors = []
    for name, lo in _RANGES.get(type(node), []):
        v = getattr(node, name)
        if isinstance(v, int) and v < lo:
            errors.append(f"{node.name}: {name} must be >= {lo}, got {v}")
    if isinstance(node, Fixed) and isinstance(node.l, int) and isinstance(node.c, int) and node.c > node.l:
        errors.append(f"fixed: c must be <= l, got c={node.c} > l={node.l}")
    return errors


def check_arguments(node: Node) -> None:
    """Raise PatternError for the first argument out of range anywhere in the (concrete) tree."""
    for sub in node.walk():
        errs = argument_errors(sub)
        if errs:
            raise PatternError(errs[0])
