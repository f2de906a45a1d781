"""Exact counts of the analysis == the dense reference's, for random patterns and shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patternc import ir
from patternc.analysis import keys_per_row, report
from patternc.analysis.rows import dense_rows, row_counts
from patternc.analysis.tiles import block_graph
from patternc.reference import mask, mask_np

from .strategies import lengths, patterns


@given(patterns(symbolic=True), lengths(64))
def test_row_counts_equal_the_reference(p: ir.Node, nn: tuple[int, int]) -> None:
    nq, nk = nn
    rc = row_counts(p, nq, nk)
    assert rc.exact
    assert rc.counts.tolist() == mask_np(p, nq, nk).sum(1).tolist()


@given(patterns(), lengths(48), st.data())
def test_key_and_row_ranges(p: ir.Node, nn: tuple[int, int], data: st.DataObject) -> None:
    nq, nk = nn
    a = data.draw(st.integers(0, nk))
    b = data.draw(st.integers(a, nk))
    r0 = data.draw(st.integers(0, nq))
    r1 = data.draw(st.integers(r0, nq))
    got = row_counts(p, nq, nk, keys=(a, b), rows=(r0, r1)).counts
    assert got.tolist() == mask_np(p, nq, nk)[r0:r1, a:b].sum(1).tolist()


@given(patterns(heads=True), lengths(40), st.sampled_from([4, 8]), st.integers(1, 16))
def test_report_counts_equal_the_reference(p: ir.Node, nn: tuple[int, int], heads: int, block: int) -> None:
    nq, nk = nn
    m = mask(p, nq, nk=nk, heads=heads).numpy()
    per_row = m.sum(-1)
    r = report(p, nk, nq=nq, heads=heads, block=block, head_dim=32)
    assert r.nnz == int(m.sum())
    assert r.flops == 4 * int(m.sum()) * 32
    assert r.min_keys == int(per_row.min())
    assert r.max_keys == int(per_row.max())
    assert r.mean_keys == pytest.approx(float(per_row.mean()))
    assert r.empty_rows == int((per_row == 0).sum())
    assert r.density == pytest.approx(float(m.mean()))
    assert sum(len(g.heads) for g in r.groups) == heads
    for g in r.groups:
        for h in g.heads:
            assert g.nnz == int(m[h].sum())
            assert g.empty_rows == int((per_row[h] == 0).sum())
    assert not {"nnz", "min_keys", "max_keys", "empty_rows"} & set(r.bounds)


@given(patterns(symbolic=True), lengths(40))
def test_dense_rows_equal_the_reference(p: ir.Node, nn: tuple[int, int]) -> None:
    nq, nk = nn
    assert (dense_rows(p, nq, nk, (0, nq)) == mask_np(p, nq, nk)).all()


@given(patterns(), st.integers(1, 40), st.integers(1, 9))
def test_block_graph_covers_every_nonempty_block(p: ir.Node, n: int, size: int) -> None:
    nb = -(-n // size)
    pad = np.zeros((nb * size, nb * size), dtype=bool)
    pad[:n, :n] = mask_np(p, n, n)
    blocks = pad.reshape(nb, size, nb, size).any(axis=(1, 3))
    got = block_graph(p, n, size)
    assert (got | ~blocks).all()
    if not any(isinstance(x, (ir.Strided, ir.Dilated, ir.Fixed)) for x in p.walk()):
        assert (got == blocks).all()  # without residue atoms a segment with keys fills its blocks' rows


@pytest.mark.parametrize("p", [
    ir.Strided(37) & ir.Fixed(29, 5),                      # mixed residues: 2-D period table
    ir.Strided(3000) & ~ir.Fixed(2100, 7),                 # period above the 2-D limit: enumerated
    (ir.Dilated(50, 7) - ir.Strided(11)) | ir.Fixed(13, 2),
    (ir.Strided(5) | ir.Strided(7)) & ~ir.Strided(3) & ir.Causal(),
    ir.Random(40, 3) | ir.Strided(2) & ir.Band(100),       # many intervals per row
    ir.Global(ir.TokenList.of(*range(0, 400, 7))) - ir.Band(3),
])
@pytest.mark.parametrize("nq,nk", [(300, 300), (50, 4000), (2500, 2501)])
def test_long_periods_and_many_intervals(p: ir.Node, nq: int, nk: int) -> None:
    rc = row_counts(p, nq, nk)
    assert rc.exact
    assert rc.counts.tolist() == mask_np(p, nq, nk).sum(1).tolist()


def test_too_many_residue_atoms_fall_back_exactly_at_small_n() -> None:
    p = ir.Strided(2) | ir.Strided(3) | ir.Strided(5) | ir.Strided(7) | ir.Strided(11) | ir.Fixed(13, 2)
    rc = row_counts(p, 90, 100)
    assert rc.exact
    assert rc.counts.tolist() == mask_np(p, 90, 100).sum(1).tolist()


@given(patterns(heads=True), lengths(32), st.sampled_from([None, 4]))
def test_keys_per_row_equal_the_reference(p: ir.Node, nn: tuple[int, int], heads: int | None) -> None:
    nq, nk = nn
    h = heads if heads is not None else ir.head_counts(p)
    if h % ir.head_counts(p):
        h = ir.head_counts(p)
    got = keys_per_row(p, nk, nq=nq, heads=h)
    assert got.tolist() == mask(p, nq, nk=nk, heads=h).numpy().sum(-1).tolist()
