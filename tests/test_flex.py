"""to_flex: FlexAttention BlockMasks from the plan, mask_mods equal to the reference."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention.flex_attention import BlockMask, create_mask, flex_attention

from patternc import ir
from patternc.flex import mask_mod, to_flex
from patternc.reference import attention
from patternc.reference import mask as ref_mask
from tests.strategies import lengths, patterns

T = ir.TokenList


def _heads_for(node: ir.Node) -> int | None:
    return 4 if ir.head_counts(node) > 1 else None


@settings(max_examples=25)
@given(patterns(heads=True), lengths(max_n=40))
def test_mask_mod_equals_reference(node: ir.Node, nqk: tuple[int, int]) -> None:
    nq, nk = nqk
    heads = _heads_for(node)
    try:
        want = ref_mask(node, nq, nk, heads=heads)
    except ir.PatternError:
        return
    H = heads or 1
    got = create_mask(mask_mod(node, nq, nk, heads=heads), 1, H, nq, nk, device="cpu")[0]
    want = want if want.dim() == 3 else want[None]
    assert torch.equal(got, want)


@settings(max_examples=40)
@given(patterns(heads=True), lengths(max_n=60), st.sampled_from([1, 4, 16]))
def test_block_mask_tables_match_reference(node: ir.Node, nqk: tuple[int, int], bs: int) -> None:
    nq, nk = nqk
    heads = _heads_for(node)
    try:
        m = ref_mask(node, nq, nk, heads=heads)
    except ir.PatternError:
        return
    m = m if m.dim() == 3 else m[None]
    bm = to_flex(node, nq, nk, block_size=bs, heads=heads)
    R, C = -(-nq // bs), -(-nk // bs)
    assert bm.kv_indices.shape[-2:] == (R, C) and bm.q_indices.shape[-2:] == (C, R)
    assert bm.seq_lengths == (nq, nk)
    # non-empty blocks of the reference, padded to whole blocks
    pad = torch.zeros(m.shape[0], R * bs, C * bs, dtype=torch.bool)
    pad[:, :nq, :nk] = m
    nonempty = pad.reshape(m.shape[0], R, bs, C, bs).any(4).any(2)
    assert torch.equal(bm.to_dense()[0].bool(), nonempty)
    # the transposed tables given to FlexAttention are the transpose of the forward ones
    dense_q = torch.zeros(m.shape[0], C, R, dtype=torch.bool)
    for h in range(m.shape[0]):
        for c in range(C):
            rows = bm.q_indices[0, h, c, :bm.q_num_blocks[0, h, c]].long()
            rows_f = bm.full_q_indices[0, h, c, :bm.full_q_num_blocks[0, h, c]].long()
            dense_q[h, c, rows] = True
            dense_q[h, c, rows_f] = True
    assert torch.equal(dense_q, nonempty.transpose(1, 2))


CASES = [
    (ir.Band(5) | ir.Global(T.range(0, 3)), 48, 48, None),
    ((ir.Window(7, 0) | ir.Strided(8)) & ir.Causal(), 33, 50, None),
    (ir.Random(3, seed=1) | ir.RandomBlocks(2, 8), 40, 40, None),
    (ir.Heads((ir.Band(2), ir.Fixed(8, 2) & ir.Causal())), 24, 40, 4),
    (~ir.Prefix(9) - ir.Dilated(3, 2), 1, 37, None),
]


@pytest.mark.parametrize(("node", "nq", "nk", "heads"), CASES, ids=lambda x: str(x))
def test_flex_attention_eager_equals_reference(node: ir.Node, nq: int, nk: int, heads: int | None) -> None:
    torch.manual_seed(0)
    H = heads or 2
    q = torch.randn(1, H, nq, 16)
    k, v = torch.randn(1, H, nk, 16), torch.randn(1, H, nk, 16)
    bm = to_flex(node, nq, nk, block_size=16, heads=heads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = flex_attention(q, k, v, block_mask=bm)
    ref = attention(q, k, v, node)
    # rows without keys: FlexAttention gives 0 too
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_flex_attention_compiled_uses_the_tables() -> None:
    # compiled FlexAttention visits only listed blocks and skips the mask_mod on FULL ones: the
    # reference output proves the tables right, and claiming every block FULL must change it
    torch.manual_seed(0)
    node = (ir.Band(20) | ir.Global(T.of(3)) | ir.RandomBlocks(1, 32)) & ~ir.Strided(5)
    nq, nk = 200, 256
    q, k, v = torch.randn(1, 2, nq, 16), torch.randn(1, 2, nk, 16), torch.randn(1, 2, nk, 16)
    bm = to_flex(node, nq, nk, block_size=128)
    fa = torch.compile(flex_attention, dynamic=False)
    torch.testing.assert_close(fa(q, k, v, block_mask=bm), attention(q, k, v, node), atol=1e-5, rtol=1e-5)
    everything = torch.full_like(bm.full_kv_num_blocks, bm.kv_indices.shape[-1])
    dense_idx = torch.arange(bm.kv_indices.shape[-1], dtype=torch.int32).expand_as(bm.kv_indices).contiguous()
    lie = BlockMask(seq_lengths=bm.seq_lengths, kv_num_blocks=torch.zeros_like(bm.kv_num_blocks),
                    kv_indices=bm.kv_indices, full_kv_num_blocks=everything, full_kv_indices=dense_idx,
                    q_num_blocks=bm.q_num_blocks, q_indices=bm.q_indices,
                    full_q_num_blocks=bm.full_q_num_blocks, full_q_indices=bm.full_q_indices,
                    BLOCK_SIZE=bm.BLOCK_SIZE, mask_mod=bm.mask_mod)
    assert not torch.allclose(fa(q, k, v, block_mask=lie), attention(q, k, v, node), atol=1e-3)


def test_heads_pattern_needs_heads() -> None:
    with pytest.raises(ir.PatternError):
        to_flex(ir.Heads((ir.Band(1), ir.Causal())), 16)


def test_node_method_delegates() -> None:
    bm = ir.Band(3).to_flex(64, block_size=16)
    assert bm.kv_num_blocks.shape == (1, 1, 4)


@pytest.mark.gpu
@pytest.mark.parametrize("node", [CASES[0][0], CASES[1][0], CASES[2][0]], ids=str)
def test_flex_attention_on_gpu_equals_reference(node: ir.Node) -> None:
    torch.manual_seed(0)
    nq, nk = 700, 1000
    q = torch.randn(1, 2, nq, 64, device="cuda")
    k, v = torch.randn(1, 2, nk, 64, device="cuda"), torch.randn(1, 2, nk, 64, device="cuda")
    bm = to_flex(node, nq, nk, device="cuda")
    out = torch.compile(flex_attention)(q, k, v, block_mask=bm)
    ref = attention(q.cpu(), k.cpu(), v.cpu(), node)
    torch.testing.assert_close(out.cpu(), ref, atol=2e-3, rtol=2e-3)
