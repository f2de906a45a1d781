"""The receptive field against a brute-force layer-by-layer computation on the dense mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patternc import ir
from patternc.analysis.receptive import eccentricity, receptive_field
from patternc.reference import mask_np

from .strategies import patterns


def brute_force(p: ir.Node, n: int) -> int | None:
    """Stack layers one at a time until every target pair is reached (None: never)."""
    a = mask_np(p, n, n) | np.eye(n, dtype=bool)
    tril = np.tri(n, dtype=bool)
    target = tril if not (a & ~tril).any() else np.ones((n, n), dtype=bool)
    reach, layers = a.copy(), 1
    while not (reach | ~target).all():
        nxt = (reach.astype(np.int64) @ a.astype(np.int64)) > 0
        if (nxt == reach).all():
            return None
        reach, layers = nxt, layers + 1
    return layers


@given(patterns(symbolic=True), st.integers(1, 40))
def test_token_graph_is_exact(p: ir.Node, n: int) -> None:
    rf = receptive_field(p, n)
    assert rf.exact
    assert rf.layers == brute_force(p, n)


@given(patterns(), st.integers(2, 40), st.integers(1, 8))
def test_structural_arguments_are_exact_or_bounds(p: ir.Node, n: int, block: int) -> None:
    # exact_tokens=0 forces the large-n arguments (one layer, hub, offsets, block graph)
    rf = receptive_field(p, n, block=block, exact_tokens=0)
    truth = brute_force(p, n)
    if rf.exact:
        assert rf.layers == truth
    else:
        assert rf.layers is None or truth is None or rf.layers <= truth  # a lower bound
        if rf.upper is not None:
            assert truth is not None and truth <= rf.upper


LOCAL = [ir.Band(3), ir.Window(5, 2), ir.Band(2) & ir.Causal(), ir.Window(3, 0) | ir.Strided(7) & ir.Causal(),
         ir.Dilated(3, 2), ir.Dilated(4, 3) | ir.Band(1), ir.Strided(3) | ir.Window(0, 2),
         ir.Causal() - ir.Band(1), ~ir.Band(4), ir.Strided(5) & ~ir.Band(0)]


@pytest.mark.parametrize("p", LOCAL, ids=str)
@pytest.mark.parametrize("n", [17, 64, 101])
def test_offset_sums_on_translation_invariant_patterns(p: ir.Node, n: int) -> None:
    rf = receptive_field(p, n, exact_tokens=0)
    truth = brute_force(p, n)
    if rf.exact:
        assert rf.layers == truth
    else:
        assert rf.layers is not None and (truth is None or rf.layers <= truth)
        assert rf.upper is None or (truth is not None and truth <= rf.upper)


LOCAL_AND_GLOBAL = [(ir.Band(2) | ir.Global(ir.TokenList.of(0, 1))) & ir.Causal(),
                    ir.Window(3, 0) | ir.Cols(ir.TokenList.of(5)), ir.Band(1) | ir.Blocks(8),
                    (ir.Window(2, 1) | ir.RandomBlocks(1, 4)) & ir.Causal()]


@pytest.mark.parametrize("p", LOCAL_AND_GLOBAL, ids=str)
@pytest.mark.parametrize("n", [40, 97])
def test_block_lower_bound_and_part_upper_bound(p: ir.Node, n: int) -> None:
    rf = receptive_field(p, n, block=4, exact_tokens=0)
    truth = brute_force(p, n)
    if rf.exact:
        assert rf.layers == truth
    else:
        assert truth is not None and rf.layers is not None and rf.layers <= truth
        assert rf.upper is None or truth <= rf.upper


def test_structural_answers_at_large_n() -> None:
    n = 1 << 18
    longformer = ir.Band(256) | ir.Global(ir.TokenList.of(ir.Range(0, 16)))
    assert (receptive_field(longformer, n).layers, receptive_field(longformer, n).exact) == (2, True)
    assert str(receptive_field(ir.Causal(), n)) == "1"
    assert str(receptive_field(ir.Band(1000), n)) == str(-(-(n - 1) // 1000))
    assert str(receptive_field(ir.Blocks(4096), n)) == "never"
    assert str(receptive_field(ir.Dilated(256, 2), n)) == "never"


def brute_eccentricity(p: ir.Node, n: int, source: int) -> int | None:
    a = mask_np(p, n, n) | np.eye(n, dtype=bool)
    inside = not (a & ~np.tri(n, dtype=bool)).any()
    want = np.arange(n) <= source if inside else np.ones(n, dtype=bool)
    reach, layers = a[source].copy(), 1
    while not (reach | ~want).all():
        nxt = a[reach].any(axis=0) | reach
        if (nxt == reach).all():
            return None
        reach, layers = nxt, layers + 1
    return layers


@given(patterns(), st.integers(2, 40), st.data())
def test_single_source_eccentricity(p: ir.Node, n: int, data: st.DataObject) -> None:
    source = data.draw(st.integers(0, n - 1))
    a = mask_np(p, n, n) | np.eye(n, dtype=bool)
    inside = not (a & ~np.tri(n, dtype=bool)).any()
    got = eccentricity(ir.concretize(p, n), n, source, inside, 10 * n)
    if got is False:  # residue atoms: the search declines
        assert any(isinstance(x, (ir.Strided, ir.Dilated, ir.Fixed)) for x in p.walk())
    else:
        assert got == brute_eccentricity(p, n, source)


@pytest.mark.parametrize("n,w", [(5000, 16), (4099, 7)])
def test_causal_longformer_is_exact_beyond_the_token_graph(n: int, w: int) -> None:
    # query n-1 reaches key 1 only along the band (key 0 is global, but sees only itself)
    rf = receptive_field((ir.Band(w) | ir.Global(ir.TokenList.of(0))) & ir.Causal(), n)
    assert rf.exact and rf.layers == -(-(n - 2) // w)
