"""IR passes: each keeps the reference mask (and its errors) on random patterns."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from patternc import ir
from patternc.passes import PIPELINE, flatten, fold, normalize, optimize, simplify
from patternc.reference import mask as ref_mask
from tests.strategies import lengths, patterns

T = ir.TokenList
PASSES = [*PIPELINE, optimize]


def _outcome(node: ir.Node, nq: int, nk: int, heads: int) -> torch.Tensor | str:
    try:
        return ref_mask(node, nq, nk, heads=heads)
    except ir.PatternError:
        return "error"


@given(patterns(symbolic=True, heads=True), lengths(max_n=32), st.sampled_from([4, 8]),
       st.sampled_from(PASSES))
def test_pass_keeps_the_mask(node: ir.Node, nqk: tuple[int, int], heads: int, p) -> None:  # type: ignore[no-untyped-def]
    out = p(node)
    assert ir.head_counts(out) == ir.head_counts(node)
    want, got = _outcome(node, *nqk, heads), _outcome(out, *nqk, heads)
    if isinstance(want, str):
        assert got == want
    else:
        assert isinstance(got, torch.Tensor) and torch.equal(got, want)


@given(patterns(max_leaves=8))
def test_optimize_is_idempotent_and_never_grows(node: ir.Node) -> None:
    once = optimize(node)
    assert optimize(once) == once
    size = sum(1 for _ in node.walk())
    grows = 2 * sum(isinstance(s, ir.Global) for s in node.walk())  # global -> rows | cols
    assert sum(1 for _ in once.walk()) <= size + grows


B, C, F, E = ir.Band, ir.Causal(), ir.Full(), ir.Empty()


@pytest.mark.parametrize(("before", "after"), [
    (B(3) | F, F), (B(3) & E, E), (~~B(3), ir.Window(3, 3)), (B(2) - B(2), E), (C | ~C, F),
    (C & ~C, E), (F - C, ~C), (B(2) | B(5), ir.Window(5, 5)), (B(4) & C, ir.Window(4, 0)),
    (ir.Window(3, 1) & ir.Window(1, 6), ir.Window(1, 1)), (ir.Strided(1) & C, C),
    (ir.Rows(T.of(1)) | ir.Rows(T.range(4, 6)), ir.Rows(T.of(1, ir.Range(4, 6)))),
    (ir.Dilated(3, 1), ir.Window(3, 3)), (ir.Global(T(())) | C, C), (ir.Blocks(1), ir.Window(0, 0)),
    (ir.Fixed(4, 4), F),
])
def test_rewrites(before: ir.Node, after: ir.Node) -> None:
    assert optimize(before) == after


def test_never_drops_what_could_fail() -> None:
    bad = ir.Dilated(2, 0)  # out of range: must still raise after optimization
    assert optimize(bad | F) != F
    sym = ir.Band(ir.BinOp("-", 4, ir.N()))  # negative once n > 4
    assert optimize(sym & E) != E
    hd = ir.Heads((C, B(1)))  # drops would change the head count
    assert ir.head_counts(optimize(hd | F)) == 2


def test_flatten_and_normalize_shapes() -> None:
    nested = ir.Union((ir.Union((C, B(1))), ir.Intersect((ir.Intersect((C, B(2))),))))
    assert flatten(nested) == ir.Union((C, B(1), ir.Intersect((C, B(2)))))
    assert normalize(ir.Global(T.of(0))) == ir.Union((ir.Rows(T.of(0)), ir.Cols(T.of(0))))
    assert fold(ir.Complement(ir.Complement(C))) == C
    W = ir.Window
    assert simplify(ir.Union((W(1, 1), C, W(2, 0)))) == ir.Union((C, W(2, 1)))
