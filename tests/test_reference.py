"""The reference itself: hand-checked masks and the properties SPEC section 1 promises."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from patternc import ir
from patternc.reference import attention, mask

from .strategies import lengths, patterns


def grid(text: str) -> list[list[int]]:
    return [[int(c) for c in row.strip()] for row in text.strip().splitlines()]


def test_band_and_causal_by_hand() -> None:
    assert mask(ir.Band(1) & ir.Causal(), 4).int().tolist() == grid("""
        1000
        1100
        0110
        0011""")


def test_queries_align_to_the_end_of_the_keys() -> None:
    # nq=2, nk=4: query 0 sits at position 2
    assert mask(ir.Causal(), 2, nk=4).int().tolist() == grid("""
        1110
        1111""")


@given(st.integers(0, 5), st.integers(0, 3), st.integers(1, 40), st.integers(1, 40))
def test_random_rows_are_a_function_of_position(r: int, seed: int, nk: int, nq_seed: int) -> None:
    nq = 1 + nq_seed % nk
    full = mask(ir.Random(r, seed), nk)
    part = mask(ir.Random(r, seed), nq, nk=nk)
    assert torch.equal(full[nk - nq:], part)
    assert (full.sum(1) == min(r, nk)).all()


@given(st.integers(0, 4), st.integers(1, 6), st.integers(0, 3), st.integers(1, 40))
def test_random_blocks_pick_whole_key_blocks(r: int, b: int, seed: int, nk: int) -> None:
    m = mask(ir.RandomBlocks(r, b, seed), nk).numpy()
    nb = -(-nk // b)
    for p in range(nk):
        picked = {j // b for j in np.flatnonzero(m[p])}
        assert len(picked) == min(r, nb)
        for kb in picked:
            assert m[p, kb * b:min(nk, (kb + 1) * b)].all()
        # rows of one query block draw the same key blocks
        assert (m[p] == m[(p // b) * b]).all()


@given(patterns(heads=True), lengths(24), st.sampled_from([4, 8]))
def test_heads_follow_their_part(p: ir.Node, nn: tuple[int, int], heads: int) -> None:
    nq, nk = nn
    m = mask(p, nq, nk=nk, heads=heads)
    assert m.shape == (heads, nq, nk)
    g = ir.head_counts(p)
    for h in range(heads):
        assert torch.equal(m[h], mask(ir.select_head(p, h * g // heads, g), nq, nk=nk))


def test_empty_rows_give_zero_not_nan() -> None:
    q, k, v = (torch.randn(1, 2, 5, 8, requires_grad=True) for _ in range(3))
    out = attention(q, k, v, ir.Rows(ir.TokenList.of(1, 3)))
    assert torch.isfinite(out).all()
    assert (out[:, :, [0, 2, 4]] == 0).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()


def test_one_part_heads_needs_no_head_count() -> None:
    p = ir.Heads((ir.Band(1),)) & ir.Causal()
    assert torch.equal(mask(p, 6), mask(ir.Band(1) & ir.Causal(), 6))
