"""The asymptotic class of nnz in ``n`` (``nq = nk = n``), derived from the pattern's structure.

No curve fitting: each primitive's pair count is a formula in its (possibly symbolic) arguments,
and each integer expression has a growth ``n^a log^b n``. The class is always an upper bound
(``O``); ``Bound.tight`` says the rules also prove the matching lower bound (``Θ``). The rules,
with ``K(x) = min(max(x, 1), n)`` the keys per row that an extent ``x`` gives:

==========================  ====================================  ==============================
pattern                     nnz                                   tight when
==========================  ====================================  ==============================
full, causal, ~A            ``n^2``                               always (``~A``: ``A`` is o(n^2))
empty, random(0), ...       ``0``                                 always
window(l, r), band(w)       ``n K(max(l, r))``                    the arguments' growth is tight
dilated(w, r)               ``n K(min(w, n / r))``                idem
strided(s)                  ``n K(n / s)``                        idem
blocks(b)                   ``n K(b)``                            idem
fixed(l, c)                 ``n (K(l) + K(n c / l))``             idem
rows / cols / global(T)     ``n K(|T|)``                          constant lists
prefix(m)                   ``K(m)^2``                            idem
random(r), random_blocks    ``n K(r)``, ``n K(r b)``              idem
A | B                       ``max``                               a part of the max is tight
A & B                       ``min`` (distributed over unions)     a tight part with full, or with
                                                                  causal when symmetric (half
                                                                  survives) or inside causal
spans & one stride          ``n K(span / stride)``                the arguments' growth is tight
A - B                       class of ``A``                        ``A`` tight and ``B`` smaller
heads(P...)                 ``max`` (per head)                    a part of the max is tight
==========================  ====================================  ==============================

Integer expressions: ``+``, ``max`` take the max; ``*`` adds exponents; ``x // y`` subtracts;
``sqrt`` halves; ``log2`` of a polynomial is ``log n``; ``-``, ``%`` and ``min`` of unlike terms
are bounded by their larger side (not tight). Constants are evaluated exactly (``0`` is zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from patternc import ir


@dataclass(frozen=True, order=True)
class Growth:
    """``n^a log^b n``; ``zero`` is the identically-zero function (below every other growth)."""

    nonzero: bool
    a: Fraction = Fraction(0)
    b: Fraction = Fraction(0)

    def __mul__(self, other: Growth) -> Growth:
        if not (self.nonzero and other.nonzero):
            return ZERO
        return Growth(True, self.a + other.a, self.b + other.b)

    def __truediv__(self, other: Growth) -> Growth:
        if not self.nonzero:
            return ZERO
        return Growth(True, self.a - other.a, self.b - other.b)

    def sqrt(self) -> Growth:
        return Growth(True, self.a / 2, self.b / 2) if self.nonzero else ZERO

    def __str__(self) -> str:
        if not self.nonzero:
            return "0"
        num = [t for t in (_power("n", self.a), _power("log", self.b)) if t]
        den = [t for t in (_power("n", -self.a), _power("log", -self.b)) if t]
        s = " ".join(num) or "1"
        return f"{s} / {' '.join(den)}" if den else s

    @property
    def big_o(self) -> str:
        return f"O({self})" if self.nonzero else "0"


def _power(base: str, e: Fraction) -> str:
    if e <= 0:
        return ""
    whole, half = divmod(e, 1)
    if base == "log":
        if e == 1:
            return "log n"
        if e == Fraction(1, 2):
            return "sqrt(log n)"
        return f"log^{_frac(e)} n"
    if half == Fraction(1, 2):
        head = {0: "", 1: "n "}.get(int(whole), f"n^{int(whole)} ")
        return head + "sqrt n"
    if half:
        return f"n^({_frac(e)})"
    return "n" if e == 1 else f"n^{int(e)}"


def _frac(e: Fraction) -> str:
    return str(e.numerator) if e.denominator == 1 else f"({e.numerator}/{e.denominator})"


ZERO = Growth(False)
ONE = Growth(True)
N = Growth(True, Fraction(1))
N2 = Growth(True, Fraction(2))


@dataclass(frozen=True)
class Bound:
    """An upper bound on a quantity's growth; ``tight`` when it is also a lower bound."""

    growth: Growth
    tight: bool

    def __str__(self) -> str:
        return self.growth.big_o


# --------------------------------------------------------------------------- integer expressions


def expr_growth(x: ir.Int) -> Bound:
    """Growth of an integer expression in ``n`` (its size; constants evaluated exactly)."""
    if not ir.is_symbolic(x):
        v = ir.eval_int(x, 0) if not isinstance(x, int) else x
        return Bound(ONE if v != 0 else ZERO, True)
    match x:
        case ir.N():
            return Bound(N, True)
        case ir.Neg(a):
            return Bound(expr_growth(a).growth, False)
        case ir.BinOp(op, a, b):
            return _binop(op, expr_growth(a), expr_growth(b))
        case ir.Func(name, args):
            gs = [expr_growth(a) for a in args]
            return _func(name, gs)
    raise TypeError(f"unknown integer expression {x!r}")


def _binop(op: str, x: Bound, y: Bound) -> Bound:
    if op == "+":
        return _max(x, y)
    if op == "*":
        return Bound(x.growth * y.growth, x.tight and y.tight)
    if op == "-":  # x - y: cancellation can only make it smaller
        return Bound(max(x.growth, y.growth), x.tight and y.growth < x.growth)
    if op == "//":
        if not y.growth.nonzero:
            return Bound(x.growth, False)
        if x.growth < y.growth:
            return Bound(ZERO, x.tight and y.tight)
        return Bound(x.growth / y.growth, x.tight and y.tight)
    return Bound(min(x.growth, y.growth), False)  # x % y < y, and <= x when x >= 0


def _max(*xs: Bound) -> Bound:
    top = max(x.growth for x in xs)
    return Bound(top, any(x.tight and x.growth == top for x in xs))


def _func(name: str, gs: list[Bound]) -> Bound:
    if name == "sqrt":
        return Bound(gs[0].growth.sqrt(), gs[0].tight)
    if name == "log2":
        g = gs[0].growth
        if g.a > 0:
            return Bound(Growth(True, Fraction(0), Fraction(1)), gs[0].tight)
        return Bound(Growth(True, Fraction(0), Fraction(1)) if g > ONE else ONE, False)
    if name == "max":
        return _max(*gs)
    low = min(x.growth for x in gs)  # min
    return Bound(low, all(x.tight for x in gs))


def _keys(x: Bound) -> Bound:
    """``K(x) = min(max(x, 1), n)``: the keys per row an extent gives."""
    g = min(max(x.growth, ONE), N)
    return Bound(g, x.tight or g == ONE)


def _list_size(t: ir.TokenList) -> Bound:
    if not ir.is_symbolic(t):
        size = sum(max(0, b - max(a, 0)) for a, b in t.intervals(0))
        return Bound(ONE if size else ZERO, True)
    sizes = []
    for it in t.items:
        if isinstance(it, ir.Range):
            sizes.append(_range_size(it))
        else:
            sizes.append(Bound(ONE, False))
    return _max(*sizes)


def _range_size(r: ir.Range) -> Bound:
    """Size of ``a..b``: exact in the slope when both ends are affine in ``n`` (``n - 64..n`` is
    64 tokens, not ``n``), else bounded by the larger end."""
    hi, lo = _affine(r.stop), _affine(r.start)
    if hi is None or lo is None:
        return _binop("-", expr_growth(r.stop), expr_growth(r.start))
    # tokens outside [0, n) select nothing: clip both ends (for large n)
    zero, one = (Fraction(0), Fraction(0)), (Fraction(1), Fraction(0))
    lo_s, lo_c = (lo[0], lo[1]) if (lo[0], lo[1]) >= zero else zero
    hi_s, hi_c = (hi[0], hi[1]) if (hi[0], hi[1]) <= one else one
    slope, const, exact = hi_s - lo_s, hi_c - lo_c, hi[2] and lo[2]
    if slope > 0:
        return Bound(N, True)
    if slope < 0 or (const <= 0 and exact):
        return Bound(ZERO, exact)
    return Bound(ONE, exact)


def _affine(x: ir.Int) -> tuple[Fraction, Fraction, bool] | None:
    """``x = slope * n + const`` (``exact`` False when a floor division makes it approximate,
    within 1), or None when ``x`` is not affine in ``n``."""
    match x:
        case int():
            return Fraction(0), Fraction(x), True
        case ir.N():
            return Fraction(1), Fraction(0), True
        case ir.Neg(a):
            f = _affine(a)
            return None if f is None else (-f[0], -f[1], f[2])
        case ir.BinOp(op, a, b):
            fa, fb = _affine(a), _affine(b)
            if fa is None or fb is None:
                return None
            if op in ("+", "-"):
                sign = 1 if op == "+" else -1
                return fa[0] + sign * fb[0], fa[1] + sign * fb[1], fa[2] and fb[2]
            if op == "*" and (fa[0] == 0 or fb[0] == 0):
                return fa[0] * fb[1] + fb[0] * fa[1], fa[1] * fb[1], fa[2] and fb[2]
            if op == "//" and fb[0] == 0 and fb[1] > 0:
                return fa[0] / fb[1], fa[1] / fb[1], False
    return None


# --------------------------------------------------------------------------- patterns


def complexity(node: ir.Node) -> Bound:
    """The class of nnz(n) for ``nq = nk = n`` (see the module docstring for the rules)."""
    match node:
        case ir.Full() | ir.Causal():
            return Bound(N2, True)
        case ir.Empty():
            return Bound(ZERO, True)
        case ir.Window(left, right):
            return _rows_of(_keys(_max(expr_growth(left), expr_growth(right))))
        case ir.Band(w):
            return _rows_of(_keys(expr_growth(w)))
        case ir.Dilated(w, r):
            reach = _binop("//", Bound(N, True), expr_growth(r))
            gw = expr_growth(w)
            return _rows_of(_keys(Bound(min(gw.growth, reach.growth), gw.tight and reach.tight)))
        case ir.Strided(s):
            return _rows_of(_keys(_binop("//", Bound(N, True), expr_growth(s))))
        case ir.Blocks(b):
            return _rows_of(_keys(expr_growth(b)))
        case ir.Fixed(l, c):
            summary = _binop("//", _binop("*", Bound(N, True), expr_growth(c)), expr_growth(l))
            return _rows_of(_max(_keys(expr_growth(l)), _keys(summary)))
        case ir.Rows(t) | ir.Cols(t) | ir.Global(t):
            return _scaled(_list_size(t))
        case ir.Prefix(m):
            k = _keys(expr_growth(m)) if expr_growth(m).growth.nonzero else Bound(ZERO, expr_growth(m).tight)
            return Bound(k.growth * k.growth, k.tight)
        case ir.Random(r, _):
            return _scaled(expr_growth(r))
        case ir.RandomBlocks(r, b, _):
            return _scaled(_binop("*", expr_growth(r), expr_growth(b)))
        case ir.Union(parts) | ir.Heads(parts):
            return _max(*(complexity(c) for c in parts))
        case ir.Intersect(parts):
            return _intersect(parts)
        case ir.Diff(a, b):
            ca, cb = complexity(a), complexity(b)
            return Bound(ca.growth, ca.tight and cb.growth < ca.growth)
        case ir.Complement(a):
            return Bound(N2, complexity(a).growth < N2)
    raise TypeError(f"unknown pattern node {node!r}")


def _rows_of(keys: Bound) -> Bound:
    return Bound(N * keys.growth, keys.tight)


def _scaled(size: Bound) -> Bound:
    """``n K(size)`` unless the size is zero."""
    if not size.growth.nonzero:
        return Bound(ZERO, size.tight)
    return _rows_of(_keys(size))


def _intersect(parts: tuple[ir.Node, ...]) -> Bound:
    # (A | B) & C = (A & C) | (B & C): the union's max rule then sees each branch
    for k, c in enumerate(parts):
        if isinstance(c, ir.Union) and len(c.parts) <= 8:
            others = parts[:k] + parts[k + 1:]
            return _max(*(_intersect((*others, u)) for u in c.parts))
    bounds = [complexity(c) for c in parts]
    low = min(b.growth for b in bounds)
    if not low.nonzero:
        return Bound(ZERO, any(b.tight and not b.growth.nonzero for b in bounds))
    # `S & full` is S, and `S & causal` keeps at least half of a symmetric S (its diagonal too)
    rest = [(c, b) for c, b in zip(parts, bounds) if not isinstance(c, (ir.Causal, ir.Full))]
    if not rest:
        return Bound(low, True)
    if len(rest) > 1:
        banded = _span_over_stride([c for c, _ in rest], any(isinstance(c, ir.Causal) for c in parts))
        if banded is not None and banded.growth <= low:
            return banded
        return Bound(low, False)
    (s, b), causal = rest[0], any(isinstance(c, ir.Causal) for c in parts)
    return Bound(low, b.tight and b.growth == low and (not causal or symmetric(s) or inside_causal(s)))


def _span_over_stride(parts: list[ir.Node], causal: bool) -> Bound | None:
    """``band``/``window``/``dilated`` spans intersected with one stride: ``n K(span / stride)``
    keys (offset 0 is in every part, so at least the diagonal); None when the rule does not apply."""
    spans: list[Bound] = []
    strides: list[Bound] = []
    for c in parts:
        match c:
            case ir.Band(w):
                spans.append(expr_growth(w))
            case ir.Window(left, right):  # under causal only d >= 0 survives
                spans.append(expr_growth(left) if causal else _max(expr_growth(left), expr_growth(right)))
            case ir.Strided(st):
                strides.append(expr_growth(st))
            case ir.Dilated(w, r):
                spans.append(_binop("*", expr_growth(w), expr_growth(r)))
                strides.append(expr_growth(r))
            case _:
                return None
    if len(strides) != 1 or not spans:
        return None
    span = min(spans, key=lambda b: b.growth)
    per_row = _keys(_binop("//", span, strides[0]))
    return Bound(N * per_row.growth, per_row.tight)


def inside_causal(node: ir.Node) -> bool:
    """``node`` lies inside ``causal`` (``d >= 0`` for every pair), judged from the structure."""
    match node:
        case ir.Causal() | ir.Empty():
            return True
        case ir.Window(_, right):
            return right == 0
        case ir.Band(w) | ir.Dilated(w, _):
            return w == 0
        case ir.Union(parts):
            return all(inside_causal(c) for c in parts)
        case ir.Intersect(parts):
            return any(inside_causal(c) for c in parts)
        case ir.Diff(a, _):
            return inside_causal(a)
    return False


def symmetric(node: ir.Node) -> bool:
    """``(i, j)`` in the pattern iff ``(j, i)`` is (for ``nq = nk``), judged from the structure."""
    match node:
        case ir.Full() | ir.Empty() | ir.Band() | ir.Dilated() | ir.Strided() | ir.Blocks() | ir.Global():
            return True
        case ir.Window(left, right):
            return left == right
        case ir.Prefix():
            return True
        case ir.Union(parts) | ir.Intersect(parts):
            return all(symmetric(c) for c in parts)
        case ir.Diff(a, b):
            return symmetric(a) and symmetric(b)
        case ir.Complement(a):
            return symmetric(a)
    return False
