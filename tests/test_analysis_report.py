"""The Report: fields, JSON, bounds labelling, block density, and the rendered table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patternc import ir
from patternc.analysis import Report, render_reports, report
from patternc.analysis.blocks import offset_block_stats
from patternc.analysis.tiles import counts_and_blocks
from patternc.reference import mask

from .strategies import lengths, patterns

G16 = ir.TokenList.of(ir.Range(0, 16))
LONGFORMER = ir.Band(256) | ir.Global(G16)


def dense_block_density(m: np.ndarray, block: int) -> tuple[float, int]:
    """Non-empty blocks over all blocks, and the most non-empty blocks in a query-block row."""
    nq, nk = m.shape[-2:]
    qb, kb = -(-nq // block), -(-nk // block)
    pad = np.zeros((*m.shape[:-2], qb * block, kb * block), dtype=bool)
    pad[..., :nq, :nk] = m
    blocks = pad.reshape(*m.shape[:-2], qb, block, kb, block).any(axis=(-3, -1))
    return float(blocks.mean()), int(blocks.sum(-1).max())


@given(patterns(), lengths(48), st.integers(1, 12))
def test_block_density_equals_the_dense_blocks(p: ir.Node, nn: tuple[int, int], block: int) -> None:
    nq, nk = nn
    r = report(p, nk, nq=nq, block=block)
    density, heaviest = dense_block_density(mask(p, nq, nk=nk).numpy(), block)
    assert r.block_density == pytest.approx(density)
    assert r.heaviest_row == heaviest


def test_fields_and_json_round_trip() -> None:
    r = report(LONGFORMER, 4096, head_dim=128)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["nnz"] == r.nnz and d["n"] == d["nk"] == d["nq"] == 4096
    assert d["flops"] == 4 * r.nnz * 128 and d["head_dim"] == 128
    assert d["complexity"] == "O(n)" and d["complexity_tight"] is True
    assert d["receptive_field"] == 2 and d["bounds"] == {}
    assert d["groups"][0]["heads"] == [0]
    assert r.empty_rows == 0 and r.min_keys == 256 + 1 + 16 and r.max_keys == 4096
    assert isinstance(r, Report) and r.is_exact("nnz")


def test_million_tokens_without_a_dense_mask() -> None:
    n = 1 << 20
    r = report(LONGFORMER, n)
    # rows 0..15 see all n keys; every other row its band (clipped at the ends) plus 16 columns
    band = sum(min(p + 256, n - 1) - max(p - 256, 0) + 1 for p in (0, n - 1))  # a spot check
    assert r.max_keys == n and r.min_keys == band // 2 + 16
    assert r.receptive_field == 2 and not r.bounds


def test_heads_report_per_group_and_union_receptive_field() -> None:
    p = ir.Heads((ir.Band(2), ir.Causal()))
    r = report(p, 64, heads=4)
    m = mask(p, 64, heads=4).numpy()
    assert r.heads == 4 and r.nnz == int(m.sum())
    assert [g.heads for g in r.groups] == [(0, 1), (2, 3)]
    assert [g.pattern for g in r.groups] == ["band(2)", "causal"]
    # one layer mixes every head: band(2) | causal reaches the future 2 tokens per layer
    assert r.receptive_field == 32
    assert report(p, 64).heads == 2  # default: one head per group


def test_bounds_are_labelled_and_rendered() -> None:
    # residue atoms stop the single-source search: the block graph and band(16) bound it
    bounded = ir.Band(16) | ir.Strided(300) & ir.Rows(ir.TokenList.of(0))
    r = report(bounded, 1 << 14, block=64)
    assert "receptive_field" in r.bounds and not r.is_exact("receptive_field")
    lo, hi = r.receptive_field, r.receptive_upper
    assert isinstance(lo, int) and hi is not None and lo <= hi
    text = render_reports([("bounded", r), ("longformer", report(LONGFORMER, 1 << 14))])
    assert f"{lo}..{hi}" in text
    for column in ("nnz", "density", "fwd FLOP", "nnz class", "min keys", "mean keys", "max keys",
                   "empty rows", "block density", "B=64/128", "receptive field", "D = 64"):
        assert column in text
    assert "Θ(n)" in text and "bounded" in text


def test_render_marks_upper_bound_classes_and_never() -> None:
    r = report(ir.Blocks(8) & ir.Random(2), 64)
    text = render_reports([("x", r)])
    assert "O(n)" in text and "Θ(n)" not in text  # an intersection is only an upper bound
    assert "never" in text


def test_bad_lengths_raise_pattern_errors() -> None:
    for kwargs in ({"nq": -1}, {"block": 0}, {"head_dim": 0}):
        with pytest.raises(ir.PatternError):
            report(ir.Causal(), 8, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ir.PatternError):
        report(ir.Heads((ir.Band(1), ir.Causal())), 8, heads=3)
    with pytest.raises(ir.PatternError):
        report(ir.Strided(0), 8)


TRANSLATION_INVARIANT = [
    ir.Band(3), ir.Window(5, 0) & ir.Causal(), ir.Strided(7), ir.Dilated(3, 4) | ir.Band(1),
    (ir.Window(6, 0) | ir.Strided(9)) & ir.Causal(), ~ir.Band(2), ir.Strided(3) - ir.Strided(6),
]


@pytest.mark.parametrize("p", TRANSLATION_INVARIANT, ids=str)
@pytest.mark.parametrize("nq,nk,block", [(64, 64, 8), (13, 100, 16), (97, 97, 10), (1, 50, 7), (5, 6, 8),
                                         (40, 40, 40)])
def test_offset_block_density_equals_the_dense_blocks(p: ir.Node, nq: int, nk: int, block: int) -> None:
    stats = offset_block_stats(p, nq, nk, block)
    assert stats is not None
    density, heaviest = dense_block_density(mask(p, nq, nk=nk).numpy(), block)
    assert stats[0] == pytest.approx(density) and stats[1] == heaviest
    assert offset_block_stats(p | ir.Global(ir.TokenList.of(0)), nq, nk, block) is None


RESIDUE_PATTERNS = [  # the longest step between keys is at most 8
    ir.Fixed(8, 2) & ir.Causal(), ir.Random(2) | ir.Fixed(6, 1) & ir.Causal(),
    ir.Strided(3) | ir.Global(ir.TokenList.of(1)),
    (ir.Dilated(5, 2) | ir.Rows(ir.TokenList.of(0, 7))) - ir.Prefix(5),
    ir.Strided(2) & ir.Fixed(6, 3) | ir.Band(1),
]


@pytest.mark.parametrize("p", RESIDUE_PATTERNS, ids=str)
@pytest.mark.parametrize("nq,nk,block", [(64, 64, 8), (13, 100, 16), (97, 97, 10)])
def test_residue_block_density_in_the_counting_sweep(p: ir.Node, nq: int, nk: int, block: int) -> None:
    rc, stats = counts_and_blocks(p, nq, nk, block)
    m = mask(p, nq, nk=nk).numpy()
    assert rc.counts.tolist() == m.sum(1).tolist()
    assert stats is not None  # every step between keys is at most the block size here
    density, heaviest = dense_block_density(m, block)
    assert stats[0] == pytest.approx(density) and stats[1] == heaviest
    _, sparse = counts_and_blocks(ir.Strided(17) | ir.Band(1), nq, nk, block)
    assert sparse is None  # steps of 17 keys: the lowering decides
