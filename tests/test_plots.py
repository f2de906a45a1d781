"""Pictures: the mask PNG shows exactly the mask, block layouts show exactly the plan's tables."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.image import imread

from patternc import ir, plots
from patternc.lower import lower
from patternc.plan import BlockTables, Plan
from patternc.reference import mask as ref_mask

from .strategies import lengths, patterns

DARK = np.array([0x1F, 0x3B, 0x73]) / 255  # attended
WHITE = np.ones(3)


def decode(path_or_bytes: object) -> np.ndarray:
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return imread(src, format="png")[..., :3]


def cells(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The colour at the centre of each of ``rows x cols`` equal cells."""
    sy, sx = img.shape[0] // rows, img.shape[1] // cols
    assert img.shape[:2] == (rows * sy, cols * sx)
    return img[sy // 2::sy, sx // 2::sx]


@given(patterns(), lengths(40))
def test_mask_png_shows_the_mask(p: ir.Node, nn: tuple[int, int]) -> None:
    nq, nk = nn
    m = ref_mask(p, nq, nk=nk).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        plots.save_mask_png(torch.from_numpy(m), f"{tmp}/m.png")
        c = cells(decode(f"{tmp}/m.png"), nq, nk)
    np.testing.assert_allclose(c[m], np.broadcast_to(DARK, c[m].shape), atol=1 / 255)
    np.testing.assert_allclose(c[~m], np.broadcast_to(WHITE, c[~m].shape), atol=1 / 255)


def test_mask_png_puts_heads_side_by_side(tmp_path: object) -> None:
    p = ir.Heads((ir.Band(1), ir.Causal(), ir.Full(), ir.Empty()))
    m = ref_mask(p, 9, nk=12, heads=4).numpy()
    path = f"{tmp_path}/h.png"
    plots.save_mask_png(m, path)
    c = cells(decode(path), 9, 4 * 12 + 3)  # 4 planes and 3 one-column separators
    for h in range(4):
        plane = c[:, h * 13:h * 13 + 12]
        np.testing.assert_allclose(plane[m[h]], np.broadcast_to(DARK, plane[m[h]].shape), atol=1 / 255)
        np.testing.assert_allclose(plane[~m[h]], np.broadcast_to(WHITE, plane[~m[h]].shape), atol=1 / 255)
    sep = c[:, [12, 25, 38]]
    assert (np.abs(sep - sep[0, 0]) < 1e-6).all() and not np.allclose(sep[0, 0], WHITE)


def test_mask_png_rejects_other_shapes(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="mask is"):
        plots.save_mask_png(np.zeros(5, dtype=bool), f"{tmp_path}/x.png")


def bcsr(classes: np.ndarray) -> tuple[np.ndarray, ...]:
    """BCSR lists (partial, full) of a class matrix, padded like patternc.plan."""
    out = []
    for cls in (1, 2):
        hit = classes == cls
        num = hit.sum(1)
        idx = np.zeros((classes.shape[0], max(1, int(num.max(initial=0)))), dtype=np.int64)
        for r in range(classes.shape[0]):
            idx[r, :num[r]] = np.flatnonzero(hit[r])
        out += [num, idx]
    return tuple(out)


@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 40), st.randoms(use_true_random=False))
def test_block_grid_draws_the_tables(rows: int, cols: int, max_side: int, rnd: object) -> None:
    rng = np.random.default_rng(rnd.randrange(1 << 30))  # type: ignore[attr-defined]
    classes = rng.choice(3, size=(rows, cols), p=[0.6, 0.25, 0.15]).astype(np.uint8)
    img = plots.block_grid(*bcsr(classes), cols=cols, max_side=max_side)
    f = -(-max(rows, cols) // max_side)
    assert max(img.shape) <= max_side
    # each pixel is the heaviest class of the f x f blocks it covers
    padded = np.zeros((img.shape[0] * f, img.shape[1] * f), dtype=np.uint8)
    padded[:rows, :cols] = classes
    np.testing.assert_array_equal(img, padded.reshape(img.shape[0], f, img.shape[1], f).max(axis=(1, 3)))


@given(patterns(), lengths(40), st.sampled_from([1, 4, 8]))
def test_block_layout_of_a_real_plan_agrees_with_the_mask(p: ir.Node, nn: tuple[int, int], b: int) -> None:
    nq, nk = nn
    plan = lower(p, nq, nk, block_q=b, block_k=b)
    fw = plan.forward
    img = plots.block_grid(*(t[0].numpy() for t in (fw.num, fw.idx, fw.full_num, fw.full_idx)),
                           cols=plan.num_k_blocks, max_side=10_000)
    m = ref_mask(p, nq, nk=nk).numpy()
    for qb in range(plan.num_q_blocks):
        for kb in range(plan.num_k_blocks):
            tile = m[qb * b:(qb + 1) * b, kb * b:(kb + 1) * b]
            if img[qb, kb] == 0:
                assert not tile.any()
            elif img[qb, kb] == 2:
                assert tile.all()


def test_block_layout_at_a_million_tokens_never_builds_n_by_n() -> None:
    # an n x n array here would need a terabyte; the figure only reads the plan's lists
    n = 1 << 20
    plan = lower(ir.Band(256) | ir.Global(ir.TokenList.range(0, 16)), n, n, block_q=128, block_k=128)
    png = plots.figure_png(plots.block_layout_figure(plan))
    assert decode(png).shape[0] > 100


def test_block_layout_has_one_panel_per_head_group() -> None:
    p = ir.Heads((ir.Band(8), ir.Strided(4))) & ir.Causal()
    fig = plots.block_layout_figure(lower(p, 128, 128, block_q=16, block_k=16, heads=2))
    assert len(fig.axes) == 2


def test_block_layout_accepts_a_hand_built_plan() -> None:
    # a 2 x 3 block plan: row 0 partial at key block 2, row 1 full at key blocks 0 and 1
    t = BlockTables.from_lists(torch.tensor([[1, 0]]), torch.tensor([[[2, 0], [0, 0]]]),
                               torch.tensor([[0, 2]]), torch.tensor([[[0, 0], [0, 1]]]))
    plan = Plan(nq=8, nk=12, block_q=4, block_k=4, groups=1, forward=t, backward=t)
    img = plots.block_grid(*(x[0].numpy() for x in (t.num, t.idx, t.full_num, t.full_idx)), cols=3)
    np.testing.assert_array_equal(img, [[0, 0, 1], [2, 2, 0]])
    assert decode(plots.figure_png(plots.block_layout_figure(plan))).size > 0


def test_degree_histogram_counts_every_row() -> None:
    m = ref_mask(ir.Band(2) | ir.Global(ir.TokenList.of(0)), 50).numpy()
    fig = plots.degree_histogram_figure(m)
    heights = [patch.get_height() for patch in fig.axes[0].patches]
    assert sum(heights) == 50
    deg = m.sum(1)
    assert max(heights) == np.bincount(deg).max()


def test_cost_and_timing_figures_draw_every_series() -> None:
    ns = [64, 256, 1024]
    series = {"a": {"nnz": [1.0, 2, 3], "flops": [4.0, 5, 6], "block_density": [0.5, 0.4, 0.3]},
              "b": {"nnz": [2.0, 3, 4], "flops": [5.0, 6, 7], "block_density": [0.6, 0.5, 0.2]}}
    dense = {"nnz": [n * n for n in ns], "flops": [4 * 64 * n * n for n in ns], "block_density": [1, 1, 1]}
    fig = plots.cost_figure(ns, series, dense)
    assert [len(ax.lines) for ax in fig.axes] == [3, 3, 3]
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)
    recs = [{"n": n, "system": s, "direction": d, "ms": 1.0 + n / 100}
            for n in ns for s in ("patternc", "flex") for d in ("fwd", "bwd")]
    fig = plots.timing_figure(recs)
    assert len(fig.axes[0].lines) == 4
    assert decode(plots.figure_png(fig)).size > 0


def test_timing_figure_draws_the_newest_record_of_a_point() -> None:
    recs = [{"n": 4096, "system": "patternc", "direction": "fwd", "ms": 9.0, "date": "2026-11-22 08:12 UTC"},
            {"n": 4096, "system": "patternc", "direction": "fwd", "ms": 3.0, "date": "2026-11-22 09:30 UTC"},
            {"n": 4096, "system": "patternc", "direction": "fwd", "ms": 7.0, "date": "2026-11-22 08:00 UTC"},
            {"n": 8192, "system": "flex", "direction": "bwd", "ms": 5.0}]
    lines = {ln.get_label(): ln for ln in plots.timing_figure(recs).axes[0].lines}
    assert list(lines["patternc fwd"].get_ydata()) == [3.0]
    assert lines["flex bwd"].get_linestyle() == ":" and lines["patternc fwd"].get_linestyle() == "-"
