"""Hypothesis strategies for random patterns, shared by the tests of every stage.

Patterns are drawn as IR trees over every primitive and operator, with small concrete
arguments (so that masks at a few dozen tokens exercise every case) and, optionally,
symbolic arguments in ``n``.
"""

from __future__ import annotations

from hypothesis import strategies as st

from patternc import ir

small = st.integers(min_value=0, max_value=12)
positive = st.integers(min_value=1, max_value=12)


@st.composite
def token_lists(draw: st.DrawFn) -> ir.TokenList:
    items: list[ir.Int | ir.Range] = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            a = draw(st.integers(-2, 40))
            items.append(ir.Range(a, a + draw(st.integers(0, 6))))
        else:
            items.append(draw(st.integers(-2, 40)))
    return ir.TokenList(tuple(items))


@st.composite
def fixed(draw: st.DrawFn) -> ir.Node:
    l = draw(positive)
    return ir.Fixed(l, draw(st.integers(1, l)))


def primitives(symbolic: bool = False) -> st.SearchStrategy[ir.Node]:
    nat = small | st.just(ir.BinOp("//", ir.N(), 4)) if symbolic else small
    pos = positive | st.just(ir.Func("sqrt", (ir.N(),))) if symbolic else positive
    return st.one_of(
        st.just(ir.Full()), st.just(ir.Empty()), st.just(ir.Causal()),
        st.builds(ir.Window, nat, nat),
        st.builds(ir.Band, nat),
        st.builds(ir.Dilated, st.integers(0, 5), st.integers(1, 4)),
        st.builds(ir.Strided, pos),
        st.builds(ir.Blocks, pos),
        fixed(),
        st.builds(ir.Rows, token_lists()),
        st.builds(ir.Cols, token_lists()),
        st.builds(ir.Global, token_lists()),
        st.builds(ir.Prefix, nat),
        st.builds(ir.Random, st.integers(0, 4), st.integers(0, 3)),
        st.builds(ir.RandomBlocks, st.integers(0, 3), positive, st.integers(0, 3)),
    )


def patterns(symbolic: bool = False, max_leaves: int = 6, heads: bool = False) -> st.SearchStrategy[ir.Node]:
    """Random pattern trees; with ``heads=True`` some subtrees are ``heads(...)`` of 1, 2 or 4 parts."""

    def extend(children: st.SearchStrategy[ir.Node]) -> st.SearchStrategy[ir.Node]:
        ops = [
            st.tuples(children, children).map(lambda ab: ab[0] | ab[1]),
            st.tuples(children, children).map(lambda ab: ab[0] & ab[1]),
            st.tuples(children, children).map(lambda ab: ab[0] - ab[1]),
            children.map(lambda a: ~a),
        ]
        if heads:
            ops.append(st.lists(children, min_size=1, max_size=4)
                       .filter(lambda xs: len(xs) in (1, 2, 4)).map(lambda xs: ir.Heads(tuple(xs))))
        return st.one_of(*ops)

    return st.recursive(primitives(symbolic), extend, max_leaves=max_leaves)


@st.composite
def lengths(draw: st.DrawFn, max_n: int = 48) -> tuple[int, int]:
    """``(nq, nk)`` with ``1 <= nq <= nk``: decode, chunked prefill and self-attention."""
    nk = draw(st.integers(1, max_n))
    nq = draw(st.sampled_from([nk, 1, draw(st.integers(1, nk))]))
    return nq, nk


d_primitives = st.one_of(
    st.just(ir.Causal()), st.builds(ir.Window, st.integers(0, 9), st.integers(0, 9)),
    st.builds(ir.Band, st.integers(0, 9)), st.builds(ir.Dilated, st.integers(0, 4), st.integers(1, 5)),
    st.builds(ir.Strided, st.integers(1, 20)),
)
d_patterns = st.recursive(d_primitives, lambda c: st.one_of(
    st.tuples(c, c).map(lambda ab: ab[0] | ab[1]), st.tuples(c, c).map(lambda ab: ab[0] & ab[1]),
    st.tuples(c, c).map(lambda ab: ab[0] - ab[1]), c.map(lambda a: ~a)), max_leaves=4)
"""Patterns of ``d = p - j`` alone (the primitives with a diagonal structure and operators)."""
