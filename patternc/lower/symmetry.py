"""Patterns equal to their own transpose: their transposed tables are their tables.

With as many queries as keys (queries at the keys' positions) and equal block sizes, a pattern
that holds ``(p, j)`` exactly when it holds ``(j, p)`` has a symmetric block-state matrix, so
the backward tables are the forward ones: no transpose, no second set of tables. ``band``,
``blocks``, ``full``, ``sliding_window`` and ``rows(t) | cols(t) | window(w, w)`` (Longformer)
are; ``causal``, ``fixed`` and random patterns are not. Decided structurally (sufficient, not
necessary): the mirror image of the tree, with unions and intersections compared as sets.
"""

from __future__ import annotations

from patternc import ir

_SELF_MIRROR = (ir.Full, ir.Empty, ir.Band, ir.Dilated, ir.Strided, ir.Blocks, ir.Global, ir.Prefix)


def mirror(node: ir.Node) -> ir.Node | None:
    """The pattern holding ``(j, p)`` where ``node`` holds ``(p, j)`` (queries at the keys'
    positions), or None where this module has no form for it (``causal``, ``fixed``, random)."""
    match node:
        case _ if isinstance(node, _SELF_MIRROR):
            return node
        case ir.Window(left, right):
            return ir.Window(right, left)
        case ir.Rows(t):
            return ir.Cols(t)
        case ir.Cols(t):
            return ir.Rows(t)
        case ir.Random(r, _) | ir.RandomBlocks(r, _, _) if r == 0:
            return node  # no keys drawn: empty
        case ir.Union() | ir.Intersect() | ir.Diff() | ir.Complement():
            return ir.map_children_or_none(node, mirror)
    return None


def _canonical(node: ir.Node) -> object:
    """A key equal for trees that differ only in the order of union / intersection parts."""
    if isinstance(node, (ir.Union, ir.Intersect)):
        return type(node), frozenset(_canonical(p) for p in node.parts)
    if isinstance(node, (ir.Diff, ir.Complement)):
        return type(node), tuple(_canonical(c) for c in node.children())
    return node


def symmetric(node: ir.Node) -> bool:
    """True when ``node`` (concrete, head-free) provably equals its transpose at ``nq == nk``."""
    m = mirror(node)
    return m is not None and _canonical(m) == _canonical(node)
