"""IR passes: plain functions ``Node -> Node`` that keep the set of pairs (the reference mask).

    >>> from patternc.ir import Band, Causal, Full, Global, TokenList
    >>> print(optimize((Band(4) & Causal()) | Full() - Full()))
    window(4, 0)
    >>> print(optimize(Global(TokenList.of(0)) | Band(2) | Band(3)))
    rows([0]) | cols([0]) | window(3, 3)

The pipeline is the declared tuple :data:`PIPELINE`, run to a fixed point by :func:`optimize`:

* ``normalize``: one spelling per meaning (``band(w)`` and ``dilated(w, 1)`` -> ``window(w, w)``,
  ``global(t)`` -> ``rows(t) | cols(t)``, ``strided(1)`` / ``fixed(l, l)`` -> ``full``,
  ``blocks(1)`` -> ``window(0, 0)``, an empty token list -> ``empty``);
* ``flatten``: nested unions / intersections into one node, single-part ones into their part;
* ``fold``: ``full`` / ``empty`` and complements (``x | full = full``, ``x & empty = empty``,
  ``~~x = x``, ``x - x = empty``, ``x | ~x = full``, duplicates);
* ``simplify``: windows combine into one window (``window(a, b) | window(c, d)`` is
  ``window(max(a, c), max(b, d))``, both hold ``d = 0``; ``window & causal`` is ``window(a, 0)``),
  ``rows`` / ``cols`` of a union concatenate their lists.

Passes never drop a subtree whose evaluation could fail or change the head count: one with
symbolic arguments (checked only once ``n`` is known), arguments out of range, or ``heads(...)``.
Concrete arguments only are rewritten; symbolic ones stay as written.
"""

from __future__ import annotations

from collections.abc import Callable

from patternc import ir

Pass = Callable[[ir.Node], ir.Node]


def _bottom_up(fn: Pass) -> Pass:
    def run(node: ir.Node) -> ir.Node:
        return fn(ir.map_children(node, run))

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _ints(*xs: object) -> bool:
    return all(isinstance(x, int) for x in xs)


@_bottom_up
def normalize(node: ir.Node) -> ir.Node:
    """One primitive per meaning, where the arguments are concrete and in range."""
    if ir.argument_errors(node):
        return node
    match node:
        case ir.Band(w) if _ints(w):
            return ir.Window(w, w)
        case ir.Dilated(w, 1) if _ints(w):
            return ir.Window(w, w)
        case ir.Rows(t) | ir.Cols(t) | ir.Global(t) if not t.items:
            return ir.Empty()
        case ir.Global(t):
            return ir.Union((ir.Rows(t), ir.Cols(t)))
        case ir.Strided(1):
            return ir.Full()
        case ir.Fixed(l, c) if _ints(l, c) and l == c:
            return ir.Full()
        case ir.Blocks(1):
            return ir.Window(0, 0)
    return node


@_bottom_up
def flatten(node: ir.Node) -> ir.Node:
    """``(a | b) | c`` -> ``a | b | c`` (same for ``&``); a one-part union is its part."""
    if isinstance(node, (ir.Union, ir.Intersect)):
        parts: list[ir.Node] = []
        for c in node.parts:
            parts.extend(c.parts if isinstance(c, type(node)) else (c,))  # type: ignore[attr-defined]
        return parts[0] if len(parts) == 1 else type(node)(tuple(parts))
    return node


def droppable(node: ir.Node) -> bool:
    """True when removing ``node`` from a tree cannot change its errors or head count."""
    return not ir.is_symbolic(node) and not any(
        isinstance(s, ir.Heads) or ir.argument_errors(s) for s in node.walk())


def _dedupe(parts: tuple[ir.Node, ...]) -> tuple[ir.Node, ...]:
    out: list[ir.Node] = []
    for p in parts:
        if p not in out or not droppable(p):
            out.append(p)
    return tuple(out)


def _fold_nary(node: ir.Union | ir.Intersect) -> ir.Node:
    union = isinstance(node, ir.Union)
    absorbing, neutral = (ir.Full(), ir.Empty()) if union else (ir.Empty(), ir.Full())
    parts = _dedupe(node.parts)
    complements = {p.a for p in parts if isinstance(p, ir.Complement)}
    if all(droppable(p) for p in parts) and (absorbing in parts or any(p in complements for p in parts)):
        return absorbing
    parts = tuple(p for p in parts if p != neutral) or (neutral,)
    return parts[0] if len(parts) == 1 else type(node)(parts)


@_bottom_up
def fold(node: ir.Node) -> ir.Node:
    """Constant folding of ``full`` / ``empty``, double complements and repeated parts."""
    match node:
        case ir.Union() | ir.Intersect():
            return _fold_nary(node)
        case ir.Complement(ir.Complement(a)):
            return a
        case ir.Complement(ir.Full()):
            return ir.Empty()
        case ir.Complement(ir.Empty()):
            return ir.Full()
        case ir.Diff(a, ir.Empty()):
            return a
        case ir.Diff(ir.Full(), b):
            return ir.Complement(b)
        case ir.Diff(a, b) if a == b or isinstance(b, ir.Full) or isinstance(a, ir.Empty):
            return ir.Empty() if droppable(node) else node
    return node


def _window_of(node: ir.Node) -> tuple[int, int] | None:
    if isinstance(node, ir.Window) and _ints(node.left, node.right) and not ir.argument_errors(node):
        return int(node.left), int(node.right)
    return None


def _merge_windows(node: ir.Union | ir.Intersect) -> ir.Node:
    union = isinstance(node, ir.Union)
    wins = [w for w in map(_window_of, node.parts) if w is not None]
    causal = not union and any(isinstance(p, ir.Causal) for p in node.parts)
    if len(wins) + causal < 2 or not wins:
        return node
    pick = max if union else min
    left, right = pick(w[0] for w in wins), pick(w[1] for w in wins)
    if causal:
        right = 0  # 0 <= d: the window's left side only
    rest = [p for p in node.parts if _window_of(p) is None and not (causal and isinstance(p, ir.Causal))]
    parts = (*rest, ir.Window(left, right))
    return parts[0] if len(parts) == 1 else type(node)(parts)


def _merge_lists(node: ir.Union) -> ir.Node:
    out: list[ir.Node] = []
    for kind in (ir.Rows, ir.Cols):
        same = [p for p in node.parts if isinstance(p, kind)]
        if len(same) > 1:
            items = tuple(it for p in same for it in p.tokens.items)  # type: ignore[attr-defined]
            out.append(kind(ir.TokenList(items)))
        else:
            out.extend(same)
    out += [p for p in node.parts if not isinstance(p, (ir.Rows, ir.Cols))]
    return out[0] if len(out) == 1 else ir.Union(tuple(out))


@_bottom_up
def simplify(node: ir.Node) -> ir.Node:
    """Windows merge into one window; ``rows`` (``cols``) of a union merge their token lists."""
    if isinstance(node, (ir.Union, ir.Intersect)):
        node = _merge_windows(node)
    if isinstance(node, ir.Union):
        node = _merge_lists(node)
    return node


PIPELINE: tuple[Pass, ...] = (normalize, flatten, fold, simplify)
"""The passes :func:`optimize` runs, in order, until nothing changes."""


def optimize(node: ir.Node, passes: tuple[Pass, ...] = PIPELINE, max_rounds: int = 8) -> ir.Node:
    """Run ``passes`` in order until the tree stops changing (at most ``max_rounds`` rounds)."""
    for _ in range(max_rounds):
        before = node
        for p in passes:
            node = p(node)
        if node == before:
            break
    return node
