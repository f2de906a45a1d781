"""Execution branches: disjoint, covering, exact tables, exact residue forms."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from patternc import ir
from patternc.lower import lower
from patternc.lower.strategies import KINDS, gathered, modulus
from patternc.reference import mask as ref_mask
from tests.strategies import lengths, patterns
from tests.test_lower import dense_states, table_states

T = ir.TokenList


def _check_branches(node: ir.Node, nq: int, nk: int, bq: int, bk: int) -> None:
    plan = lower(node, nq, nk, block_q=bq, block_k=bk)
    whole = ref_mask(node, nq, nk).numpy()
    cover = np.zeros_like(whole)
    R, C = plan.num_q_blocks, plan.num_k_blocks
    for b in plan.strategies:
        assert b.kind in KINDS and b.group == 0
        m = ref_mask(b.pattern, nq, nk).numpy()
        assert not (cover & m).any(), "branches overlap"
        cover |= m
        # compact tables: rows listed, every other row empty
        want = dense_states(m, bq, bk)
        got = np.zeros((R, C), dtype=np.int64)
        got[b.rows.numpy()] = table_states(*(t[0] for t in (b.forward.num, b.forward.idx,
                                                            b.forward.full_num, b.forward.full_idx)), C)
        np.testing.assert_array_equal(got, want)
        got_t = np.zeros((C, R), dtype=np.int64)
        got_t[b.cols.numpy()] = table_states(*(t[0] for t in (b.backward.num, b.backward.idx,
                                                              b.backward.full_num, b.backward.full_idx)), R)
        np.testing.assert_array_equal(got_t, want.T)
        assert b.cost == int((want > 0).sum())
        if b.kind == "residue":
            _check_residue(b.pattern, b.modulus, b.gathered, m, nq, nk)
    np.testing.assert_array_equal(cover, whole)


def _check_residue(part: ir.Node, r: int, form: ir.Node | None, m: np.ndarray, nq: int, nk: int) -> None:
    assert form is not None and r > 1
    p = np.arange(nq)[:, None] + (nk - nq)
    j = np.arange(nk)[None, :]
    assert not (m & ((p - j) % r != 0)).any(), "a residue branch keeps d % r == 0"
    # on d = r * e, the gathered form at (u, t) = (e, 0) decides the pair
    e = (p - j) // r
    span = int(np.abs(e).max()) + 1
    g = ref_mask(form, 2 * span + 1, 2 * span + 1).numpy()  # nq == nk: positions are indices
    # g[u, t] depends on u - t only: look it up at u = span + e, t = span
    np.testing.assert_array_equal(m, ((p - j) % r == 0) & g[span + e, span])


@settings(max_examples=40)
@given(patterns(max_leaves=5), lengths(max_n=40), st.sampled_from([1, 3, 4, 16]), st.sampled_from([1, 5, 8]))
def test_branches_partition_the_pattern(node: ir.Node, nqk: tuple[int, int], bq: int, bk: int) -> None:
    try:
        ref_mask(node, *nqk)
    except ir.PatternError:
        return
    _check_branches(node, *nqk, bq, bk)


def test_anchor_patterns_get_their_strategies() -> None:
    g = T.range(0, 16)
    n = 4096
    kinds = [b.kind for b in lower(ir.Band(256) | ir.Global(g), n, n).strategies]
    assert kinds == ["blocks", "heavy_rows", "blocks"]
    lf = lower(ir.Band(256) | ir.Global(g), n, n).strategies
    assert lf[1].heavy_rows == (0,) and lf[1].split > 1 and lf[2].heavy_cols == (0,)
    dil = lower(ir.Dilated(256, 2) | ir.Global(g), n, n).strategies[0]
    assert (dil.kind, dil.modulus, dil.gathered) == ("residue", 2, ir.Window(256, 256))
    st_ = lower((ir.Window(127, 0) | ir.Strided(128)) & ir.Causal(), n, n).strategies
    assert [b.kind for b in st_] == ["blocks", "residue"] and st_[1].modulus == 128
    for text in (ir.Band(4) | ir.Strided(3), ir.Dilated(2, 3) - ir.Band(3)):
        _check_branches(text, 50, 61, 4, 8)


def test_modulus_and_gathered() -> None:
    assert modulus(ir.Dilated(3, 4) & ir.Strided(6)) == 12
    assert modulus(ir.Dilated(3, 4) | ir.Strided(6)) == 2
    assert modulus(ir.Band(3)) == 1
    assert gathered(ir.Dilated(3, 2) & ir.Causal(), 2) == ir.Intersect((ir.Window(3, 3), ir.Causal()))
    assert gathered(ir.Strided(3), 2) is None


def test_heads_patterns_have_branches_per_group() -> None:
    plan = lower(ir.Heads((ir.Band(2), ir.Causal())), 32, 32, block_q=8, block_k=8, heads=4)
    assert {b.group for b in plan.strategies} == {0, 1}
    assert all(isinstance(b.rows, torch.Tensor) and b.rows.dtype == torch.int32 for b in plan.strategies)


_shapes = st.one_of(
    st.builds(ir.Dilated, st.integers(0, 4), st.integers(2, 4)), st.builds(ir.Strided, st.integers(2, 6)),
    st.builds(ir.Window, st.integers(0, 6), st.integers(0, 6)),
    st.builds(lambda a: ir.Rows(T.range(a, a + 3)), st.integers(0, 20)),
    st.builds(lambda a: ir.Global(T.of(a)), st.integers(0, 20)),
)


@settings(max_examples=30)
@given(st.lists(_shapes, min_size=1, max_size=3), st.booleans(), lengths(max_n=40),
       st.sampled_from([1, 4, 8]))
def test_unions_of_shapes_partition(parts: list[ir.Node], causal: bool, nqk: tuple[int, int],
                                    bs: int) -> None:
    node = ir.Union(tuple(parts)) if len(parts) > 1 else parts[0]
    _check_branches(node & ir.Causal() if causal else node, *nqk, bs, bs)
