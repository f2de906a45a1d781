"""Lowering: block tables against the dense reference mask, on random patterns and shapes."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from patternc import ir
from patternc.lower import lower
from patternc.plan import Runs, _moved, move
from patternc.reference import mask as ref_mask
from tests.strategies import d_patterns, lengths, patterns

block_sizes = st.sampled_from([1, 2, 3, 4, 5, 7, 9, 16])


def dense_states(m: np.ndarray, bq: int, bk: int) -> np.ndarray:
    """0 empty / 1 partial / 2 full per block of a boolean [nq, nk] mask (the oracle)."""
    nq, nk = m.shape
    R, C = -(-nq // bq), -(-nk // bk)
    out = np.zeros((R, C), dtype=np.int64)
    for r in range(R):
        for c in range(C):
            t = m[r * bq:(r + 1) * bq, c * bk:(c + 1) * bk]
            out[r, c] = 2 if t.all() else (1 if t.any() else 0)
    return out


def table_states(num: torch.Tensor, idx: torch.Tensor, full_num: torch.Tensor, full_idx: torch.Tensor,
                 cols: int) -> np.ndarray:
    """The same 0 / 1 / 2 matrix read back from one head group's BCSR tables."""
    R = num.shape[0]
    out = np.zeros((R, cols), dtype=np.int64)
    for r in range(R):
        part = idx[r, :num[r]].tolist()
        full = full_idx[r, :full_num[r]].tolist()
        assert part == sorted(set(part)) and full == sorted(set(full)), "rows must be sorted and distinct"
        assert not set(part) & set(full)
        out[r, part] = 1
        out[r, full] = 2
    return out


def check_plan(node: ir.Node, nq: int, nk: int, bq: int, bk: int, heads: int | None = None) -> None:
    plan = lower(node, nq, nk, block_q=bq, block_k=bk, heads=heads)
    G = ir.head_counts(node)
    assert plan.groups == G
    H = heads if heads is not None else G
    m = ref_mask(node, nq, nk, heads=heads if heads is not None else (G if G > 1 else None)).numpy()
    m = m if m.ndim == 3 else m[None]
    R, C = plan.num_q_blocks, plan.num_k_blocks
    f, b = plan.forward, plan.backward
    assert f.num.shape == (G, R) and b.num.shape == (G, C)
    for t in (f.num, f.idx, f.full_num, f.full_idx, b.num, b.idx, b.full_num, b.full_idx):
        assert t.dtype == torch.int32
    nonempty = 0
    for g in range(G):
        # head h of H uses group h * G // H: take the first head of the group
        h = next(h for h in range(H) if h * G // H == g)
        want = dense_states(m[h], bq, bk)
        got = table_states(f.num[g], f.idx[g], f.full_num[g], f.full_idx[g], C)
        np.testing.assert_array_equal(got, want)
        got_t = table_states(b.num[g], b.idx[g], b.full_num[g], b.full_idx[g], R)
        np.testing.assert_array_equal(got_t, want.T)
        nonempty += int((want > 0).sum())
    cells = G * R * C
    assert plan.stats["block_density"] == pytest.approx(nonempty / cells if cells else 0.0)
    assert plan.stats["partial_blocks"] + plan.stats["full_blocks"] == nonempty
    assert plan.stats["heaviest_row"] == int((f.num + f.full_num).max()) if R else True


@given(patterns(), lengths(), block_sizes, block_sizes)
def test_random_patterns_match_reference(node: ir.Node, nqk: tuple[int, int], bq: int, bk: int) -> None:
    check_plan(node, *nqk, bq, bk)


@settings(max_examples=40)
@given(patterns(symbolic=True, heads=True), lengths(max_n=40), block_sizes, block_sizes,
       st.sampled_from([4, 8]))
def test_heads_and_symbolic(node: ir.Node, nqk: tuple[int, int], bq: int, bk: int, heads: int) -> None:
    try:
        ir.check_heads(node, heads)
        ref_mask(node, nqk[0], nqk[1], heads=heads)
    except ir.PatternError:
        with pytest.raises(ir.PatternError):
            lower(node, *nqk, block_q=bq, block_k=bk, heads=heads)
        return
    check_plan(node, *nqk, bq, bk, heads=heads)


@settings(max_examples=30)
@given(patterns(max_leaves=3), st.integers(1, 30), st.integers(1, 30), block_sizes, block_sizes)
def test_more_queries_than_keys(node: ir.Node, nq: int, nk: int, bq: int, bk: int) -> None:
    # SPEC allows nq > nk: the first queries sit at negative positions
    check_plan(node, max(nq, nk), min(nq, nk), bq, bk)


def _tokens(*items: int | tuple[int, int]) -> ir.TokenList:
    return ir.TokenList(tuple(ir.Range(*x) if isinstance(x, tuple) else x for x in items))


C, F = ir.Causal(), ir.Full()
TRICKY = [
    C | ~C, ir.Strided(2) | (F - ir.Strided(2)), ir.Band(3) | ~ir.Band(3),
    ir.Rows(_tokens((0, 5))) | ir.Rows(_tokens((5, 10))), ir.Blocks(4) | ~ir.Blocks(4),
    ir.Fixed(6, 2) | ~ir.Blocks(6), ir.Random(3) | ~ir.Random(3),
    ir.RandomBlocks(2, 3) | ~ir.RandomBlocks(2, 3), ir.Global(_tokens(1, (7, 9))) & C,
    ir.Prefix(10) - C, ir.Dilated(4, 3) | ir.Strided(3), (ir.Window(7, 0) | ir.Strided(8)) & C,
    ir.Fixed(8, 3) & C, ir.Cols(_tokens((0, 3))) | ir.Window(0, 40),
    ~(ir.Rows(_tokens(2)) - ir.Cols(_tokens(3))),
]


@pytest.mark.parametrize("node", TRICKY, ids=str)
@pytest.mark.parametrize("shape", [(40, 40, 8, 8), (37, 53, 5, 16), (1, 29, 4, 4), (23, 23, 1, 1),
                                   (30, 30, 3, 7)])
def test_unions_of_partials_are_exact(node: ir.Node, shape: tuple[int, int, int, int]) -> None:
    check_plan(node, *shape)


def test_full_blocks_of_a_band_are_exact() -> None:
    plan = lower(ir.Band(256), 4096, 4096)
    # rows away from the edges: 2 full blocks around the diagonal... and the partial edges
    assert plan.forward.full_num[0, 10].item() == 3
    assert plan.forward.num[0, 10].item() == 2


def test_bad_arguments_raise_pattern_error() -> None:
    with pytest.raises(ir.PatternError):
        lower(ir.Dilated(3, 0), 16, 16)
    with pytest.raises(ir.PatternError):
        lower(ir.Band(ir.BinOp("-", 4, ir.N())), 16, 16)
    with pytest.raises(ir.PatternError):
        lower(ir.Band(1), 16, 16, block_q=0)
    with pytest.raises(ir.PatternError):
        lower(ir.Heads((ir.Band(1), ir.Causal())), 16, 16, heads=3)


def test_cached() -> None:
    a = lower(ir.Band(4) | ir.Causal(), 64, 64, block_q=8, block_k=8)
    assert lower(ir.Band(4) | ir.Causal(), 64, 64, block_q=8, block_k=8) is a


def test_long_sequences_stay_sparse() -> None:
    # BigBird at 256k tokens: the global row lists every key block, the others a handful
    node = ir.Band(256) | ir.Global(ir.TokenList.range(0, 16)) | ir.RandomBlocks(3, 64)
    plan = lower(node, 1 << 18, 1 << 18)
    nkb = (1 << 18) // 128
    assert plan.forward.num[0, 0].item() + plan.forward.full_num[0, 0].item() == nkb
    assert plan.stats["block_density"] < 0.01
    assert 5 <= plan.forward.num[0, 100].item() + plan.forward.full_num[0, 100].item() <= 5 + 1 + 6


@settings(max_examples=40)
@given(patterns(max_leaves=4), lengths(), block_sizes, block_sizes)
def test_run_built_paths(node: ir.Node, nqk: tuple[int, int], bq: int, bk: int) -> None:
    # small grids take dense shortcuts (d-only patterns with long strides decided block by block,
    # transposes as dense matrices); force the run-built paths that long sequences take
    from patternc.lower import combine, rle

    saved = combine.DENSE_D_CELLS, rle.DENSE_CELLS
    combine.DENSE_D_CELLS, rle.DENSE_CELLS = 0, 0
    lower.cache_clear()
    try:
        check_plan(node, *nqk, bq, bk)
        check_plan(node | ir.Strided(bq + bk + 1) & ir.Causal(), *nqk, bq, bk)
        check_plan(node & ir.Strided(max(1, bq + bk - 2)), *nqk, bq, bk)
    finally:
        combine.DENSE_D_CELLS, rle.DENSE_CELLS = saved
        lower.cache_clear()



@settings(max_examples=40)
@given(d_patterns, st.integers(1, 60), st.integers(0, 3), st.sampled_from([1, 2, 3, 4, 8]))
def test_diagonal_tables(node: ir.Node, nk: int, shift: int, b: int) -> None:
    # large grids of periodic d-only patterns build tables per diagonal: force it on small ones
    import patternc.lower as L
    from patternc.lower import toeplitz

    nq = max(1, nk - shift * b)  # (nk - nq) a multiple of the block: one state per diagonal
    saved = L.DIAGONAL_CELLS, toeplitz.MIN_DIAGONAL_RUNS
    L.DIAGONAL_CELLS, toeplitz.MIN_DIAGONAL_RUNS = -1, 0
    lower.cache_clear()
    try:
        check_plan(node, nq, nk, b, b)
        check_plan(ir.Heads((node, ir.Strided(b + 2) & ir.Causal())), nq, nk, b, b, heads=2)
    finally:
        L.DIAGONAL_CELLS, toeplitz.MIN_DIAGONAL_RUNS = saved
        lower.cache_clear()


@settings(max_examples=40)
@given(patterns(max_leaves=3), st.integers(1, 4), st.integers(2, 3), st.integers(1, 4), st.integers(1, 60),
       st.sampled_from(["|", "&", "-", "heads"]))
def test_residue_ordered_keys(node: ir.Node, bk: int, m: int, c: int, nq: int, op: str) -> None:
    # grids above PERMUTE_CELLS with fixed(l, c) classify key blocks in residue order mod the
    # period; force it on small grids (at least 4 periods of key blocks)
    import patternc.lower as L

    assume(not any(isinstance(n, ir.Fixed) for n in node.walk()))  # one period, known
    l = m * bk
    nk = 4 * l + nq % 13
    fixed = ir.Fixed(l, min(c, l))
    combos = {"|": fixed | node, "&": fixed & node, "-": fixed - node, "heads": ir.Heads((node, fixed))}
    pat = combos[op]
    saved = L.PERMUTE_CELLS
    L.PERMUTE_CELLS = -1
    lower.cache_clear()
    try:
        assert L.key_period(pat, L.Geometry(nq, nk, bk, bk)) == m
        check_plan(pat, nq, nk, bk, bk, heads=2 if op == "heads" else None)
        check_plan(pat, nq, nk, 2 * bk, bk, heads=2 if op == "heads" else None)
    finally:
        L.PERMUTE_CELLS = saved
        lower.cache_clear()


@st.composite
def segmentations(draw: st.DrawFn, M: int) -> tuple[int, ...]:
    """Residue classes 0..M-1 cut into contiguous segments (any cut is a valid key order)."""
    cuts = draw(st.sets(st.integers(1, M - 1), max_size=M - 1)) if M > 1 else set()
    return (0, *sorted(cuts), M)


@settings(max_examples=40)
@given(patterns(max_leaves=3), st.integers(1, 4), st.integers(2, 4), st.integers(1, 4), st.integers(1, 60),
       st.sampled_from(["|", "&", "-", "heads"]), st.data())
def test_any_grouping_of_residue_classes(node: ir.Node, bk: int, m: int, c: int, nq: int, op: str,
                                         data: st.DataObject) -> None:
    # the key order groups residue classes into segments (fixed: the summary classes and the
    # others); exactness must not depend on the grouping: force random ones on small grids
    import patternc.lower as L

    assume(not any(isinstance(n, ir.Fixed) for n in node.walk()))
    l = m * bk
    nk = 4 * l + nq % 13
    fixed = ir.Fixed(l, min(c, l))
    pat = {"|": fixed | node, "&": fixed & node, "-": fixed - node, "heads": ir.Heads((node, fixed))}[op]
    segments = data.draw(segmentations(m))
    saved = L.PERMUTE_CELLS, L.key_segments
    L.PERMUTE_CELLS, L.key_segments = -1, lambda *_: segments
    lower.cache_clear()
    try:
        check_plan(pat, nq, nk, bk, bk, heads=2 if op == "heads" else None)
        check_plan(pat, nq, nk, 2 * bk, bk, heads=2 if op == "heads" else None)
    finally:
        L.PERMUTE_CELLS, L.key_segments = saved
        lower.cache_clear()


@given(st.integers(1, 40), st.integers(2, 6), st.data())
def test_segment_order_is_a_permutation(nkb: int, M: int, data: st.DataObject) -> None:
    from patternc.lower import blocks as B
    from patternc.lower import rle
    from patternc.lower.tables import natural_columns

    g = B.Geometry(3, nkb * 2, 1, 2, perm=M, segments=data.draw(segmentations(M)))
    kb = np.arange(nkb, dtype=np.int64)
    col = g.to_perm(kb)
    assert sorted(col.tolist()) == kb.tolist()
    np.testing.assert_array_equal(g.from_perm(col), kb)
    # group_columns(x): where each group's blocks at or after x start, counted directly
    seg, group = g.seg(), np.searchsorted(g.seg(), kb % M, side="right") - 1
    for x in range(nkb + 1):
        np.testing.assert_array_equal(g.group_columns(np.array(x)) - g.residue_offsets()[:-1],
                                      np.bincount(group[:x], minlength=seg.size - 1))
    # permute moves every column of a random matrix to its place
    states = np.array(data.draw(st.lists(st.sampled_from([rle.EMPTY, rle.PARTIAL, rle.FULL]),
                                         min_size=3 * nkb, max_size=3 * nkb)), dtype=np.uint8).reshape(3, nkb)
    want = np.empty_like(states)
    want[:, col] = states
    np.testing.assert_array_equal(rle.to_dense(B.permute(rle.from_dense(states), g)), want)
    # natural_columns lists the natural blocks of any run of residue-ordered columns
    a = data.draw(st.integers(0, nkb - 1))
    n = data.draw(st.integers(1, nkb - a))
    one = np.array([0]), np.array([0]), np.array([5]), np.array([a]), np.array([n]), np.array([1])
    _, _, pos, start, count, step = natural_columns(one, g)  # type: ignore[arg-type]
    got = [int(s0 + k * d) for s0, c0, d in zip(start, count, step) for k in range(c0)]
    assert sorted(got) == sorted(g.from_perm(np.arange(a, a + n)).tolist())
    slots = [int(p0 + k) for p0, c0 in zip(pos, count) for k in range(c0)]
    assert sorted(slots) == list(range(5, 5 + n))


@given(st.lists(st.integers(-50, 50), unique=True, max_size=30))
def test_progressions_rebuild_the_diagonals(values: list[int]) -> None:
    from patternc.lower.toeplitz import progressions

    D = np.array(sorted(values), dtype=np.int64)
    first, step = progressions(D)
    assert first[0] == 0 and first[-1] == D.size and np.all(np.diff(first) > 0)
    parts = [D[a] + step[k] * np.arange(b - a) for k, (a, b) in enumerate(itertools.pairwise(first))]
    rebuilt = np.concatenate([*parts, np.zeros(0, dtype=np.int64)])
    np.testing.assert_array_equal(rebuilt, D)


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3), st.integers(0, 9), st.integers(1, 4),
                          st.integers(1, 3)), max_size=12), st.booleans())
def test_runs_expand_to_padded_lists(spec: list[tuple[int, int, int, int, int]], sort_rows: bool) -> None:
    from patternc.plan import Runs

    G, R = 2, 4
    lists: dict[tuple[int, int], list[int]] = {}
    cols: list[list[int]] = [[] for _ in range(6)]
    for g, r, start, count, step in spec:
        row = lists.setdefault((g, r), [])
        for k, v in enumerate((g, r, len(row), start, count, step)):
            cols[k].append(v)
        row += [start + step * t for t in range(count)]
    num = torch.zeros(G, R, dtype=torch.int32)
    for (g, r), row in lists.items():
        num[g, r] = len(row)
    runs = Runs.of([torch.tensor(c, dtype=torch.int64) for c in cols], sort_rows)
    idx = runs.expand(num)
    assert idx.dtype == torch.int32 and idx.shape == (G, R, int(num.max()) if spec else 0)
    for g in range(G):
        for r in range(R):
            want = lists.get((g, r), [])
            assert idx[g, r, :len(want)].tolist() == (sorted(want) if sort_rows else want)
            assert not idx[g, r, len(want):].any()


@pytest.mark.parametrize("source, most", [("causal", 2), ("band(256) | global([0..16])", 5),
                                           ("fixed(1024, 8) & causal", 6),
                                           ("(window(1024, 0) | strided(1024)) & causal", 6)])
def test_plans_at_a_million_tokens_are_stored_as_few_runs(source: str, most: int) -> None:
    # the tables of a causal mask at 1M tokens are 33M entries; stored, they are a few runs a row
    import patternc

    plan = lower(patternc.pattern(source), 1 << 20, 1 << 20)
    for t in (plan.forward, plan.backward):
        runs = sum(int(r.count.numel()) for r in (t.runs, t.full_runs))
        assert runs <= most * t.num.shape[1], (runs, t.num.shape)


def test_moving_a_plan_where_it_is_keeps_its_expanded_tables() -> None:
    plan = lower(ir.Band(3) | ir.Global(ir.TokenList.of(0)), 40, 40, block_q=8, block_k=8)
    assert plan.to("cpu") is plan and plan.forward.to(torch.device("cpu")) is plan.forward
    idx = plan.forward.idx
    assert plan.to("cpu").forward.idx is idx  # expanded once, not per call
    assert plan.expanded() is plan and "_expanded" in plan.backward.__dict__


def _expand_by_hand(runs: Runs, num: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(num.shape[0], num.shape[1], runs.width, dtype=torch.int32)
    for g, r, p, s, c, d in zip(*(t.tolist() for t in runs.tensors())):
        for t in range(c):
            out[g, r, p + t] = s + d * t
    if runs.sort_rows:
        for g in range(num.shape[0]):
            for r in range(num.shape[1]):
                n = int(num[g, r])
                out[g, r, :n] = out[g, r, :n].sort().values
    return out


@settings(max_examples=30)
@given(patterns(heads=True, max_leaves=4), lengths(max_n=70), block_sizes)
def test_all_tables_expand_in_one_pass_as_one_by_one(node: ir.Node, nqk: tuple[int, int], bq: int) -> None:
    """The host expansion, the moved form (all four tables in one program, packed on the host,
    moved in one copy, expanded into one aligned buffer) and a by-hand expansion of every run
    agree."""
    G = ir.head_counts(node)
    plan = lower(node, *nqk, block_q=bq, block_k=bq, heads=2 * G)
    fwd, bwd = _moved([plan.forward, plan.backward], "cpu")
    assert fwd.expansion is bwd.expansion is not None and (fwd.slot, bwd.slot) == (0, 1)
    for p in (plan.expanded(), replace(plan, forward=fwd, backward=bwd).expanded()):
        for t in (p.forward, p.backward):
            for runs, num, got in ((t.runs, t.num, t.idx), (t.full_runs, t.full_num, t.full_idx)):
                assert torch.equal(got, _expand_by_hand(runs, num))
                assert got.storage_offset() % 32 == 0  # 128-byte aligned in its buffer


@settings(max_examples=20)
@given(st.lists(st.tuples(st.sampled_from([torch.int32, torch.int64, torch.uint8]),
                          st.lists(st.integers(0, 3), max_size=3)), min_size=1, max_size=6))
def test_move_copies_every_tensor_as_an_aligned_view(specs: list[tuple[torch.dtype, list[int]]]) -> None:
    ts = [torch.randint(0, 100, shape, dtype=dt) for dt, shape in specs]
    got = move(ts, "cpu")
    for a, b in zip(ts, got):
        assert b.dtype == a.dtype and torch.equal(a, b) and b.data_ptr() % 16 == 0


@settings(max_examples=20)
@given(patterns(max_leaves=3), patterns(max_leaves=3), lengths(max_n=40), block_sizes)
def test_repeated_head_groups_classified_once(a: ir.Node, b: ir.Node, nqk: tuple[int, int], bq: int) -> None:
    import patternc.lower as L

    calls: list[int] = []
    assert L.map_distinct(lambda x: calls.append(x) or -x, [3, 1, 3, 2, 1]) == [-3, -1, -3, -2, -1]
    assert calls == [3, 1, 2]
    check_plan(ir.Heads((a, b, a)), *nqk, bq, bq, heads=3)


@settings(max_examples=40)
@given(patterns(max_leaves=5), lengths(), block_sizes, block_sizes)
def test_restricted_resolution(node: ir.Node, nqk: tuple[int, int], bq: int, bk: int) -> None:
    # undecided blocks go through per-block restricted patterns only when there are hundreds of
    # them (long sequences): force it at every size, and on a union under an intersection
    from patternc.lower import combine

    saved = combine.RESTRICT_MIN_BLOCKS
    combine.RESTRICT_MIN_BLOCKS = 0
    lower.cache_clear()
    try:
        check_plan(node, *nqk, bq, bk)
        check_plan((node | ir.Cols(_tokens((0, 3)))) & ~ir.Blocks(5), *nqk, bq, bk)
    finally:
        combine.RESTRICT_MIN_BLOCKS = saved
        lower.cache_clear()


@given(patterns(max_leaves=4), st.lists(st.sampled_from([0, 1, 2]), min_size=4, max_size=4),
       lengths(max_n=24))
def test_folded_restriction_keeps_the_pairs(node: ir.Node, subst: list[int], nqk: tuple[int, int]) -> None:
    # the restriction folds full / empty operands by itself instead of running the passes
    from patternc.lower.combine import _fold

    assume(isinstance(node, (ir.Union, ir.Intersect, ir.Diff, ir.Complement)))
    parts = [(ir.Empty(), ir.Full(), c)[k] for c, k in zip(node.children(), subst)]
    it = iter(parts)
    built = ir.map_children(node, lambda _: next(it))
    folded = _fold(node, parts)
    assert torch.equal(ref_mask(folded, *nqk), ref_mask(built, *nqk))


windows = st.one_of(st.just(ir.Causal()), st.builds(ir.Window, st.integers(0, 12), st.integers(0, 12)))


@settings(max_examples=60)
@given(st.lists(st.one_of(windows, patterns(max_leaves=2)), min_size=2, max_size=4), windows,
       st.booleans(), lengths(), block_sizes, block_sizes)
def test_windows_inside_an_intersection_are_absorbed(parts: list[ir.Node], w: ir.Node, flip: bool,
                                                     nqk: tuple[int, int], bq: int, bk: int) -> None:
    from patternc.lower.combine import absorb

    u = ir.Union(tuple(parts))
    node = ir.Intersect((w, u) if flip else (u, w))
    assert torch.equal(ref_mask(absorb(node), *nqk), ref_mask(node, *nqk))
    check_plan(node, *nqk, bq, bk)


def test_absorb_takes_the_windows_out() -> None:
    from patternc.lower.combine import absorb

    cols = ir.Cols(_tokens((0, 4)))
    node = (cols | ir.Window(1019, 0)) & ir.Causal()
    assert absorb(node) == ir.Window(1019, 0) | (cols & ir.Causal())
    assert absorb((ir.Window(3, 0) | ir.Window(2, 1)) & ir.Window(5, 1)) == ir.Window(3, 0) | ir.Window(2, 1)
    assert absorb((cols | ir.Window(2, 1)) & ir.Causal()) == (cols | ir.Window(2, 1)) & ir.Causal()


@given(patterns(max_leaves=4), st.integers(1, 40))
def test_symmetric_patterns_equal_their_transpose(node: ir.Node, n: int) -> None:
    from patternc.lower.symmetry import mirror, symmetric

    m = ref_mask(node, n, n)
    img = mirror(node)
    if img is not None:
        assert torch.equal(ref_mask(img, n, n), m.T)
    if symmetric(node):
        assert torch.equal(m, m.T)


@settings(max_examples=60)
@given(patterns(max_leaves=3), st.integers(1, 48), block_sizes, st.booleans())
def test_symmetric_plans_reuse_the_forward_tables(node: ir.Node, n: int, b: int, inter: bool) -> None:
    from patternc.lower.symmetry import mirror, symmetric

    img = mirror(node)
    assume(img is not None)
    assert img is not None
    sym = (node & img) if inter else (node | img)
    assert symmetric(sym)
    check_plan(sym, n, n, b, b)  # backward tables checked against the transposed reference
    check_plan(sym, n, n, b, b + 1)  # no symmetry of blocks: transposed as usual


def test_symmetry_is_decided_for_the_stdlib_shapes() -> None:
    from patternc.lower.symmetry import symmetric

    t = _tokens((0, 4))
    assert symmetric(ir.Rows(t) | ir.Window(3, 3) | ir.Cols(t))
    a, b = _tokens(1), _tokens(9)
    assert symmetric((ir.Rows(a) & ir.Cols(b)) | (ir.Cols(a) & ir.Rows(b)))
    assert not symmetric(ir.Window(3, 2)) and not symmetric(ir.Causal()) and not symmetric(ir.Rows(t))
    assert not symmetric(ir.Random(2)) and symmetric(ir.RandomBlocks(0, 4) | ir.Blocks(3))


@given(st.lists(st.integers(-5, 200), max_size=40), st.integers(1, 4), st.sampled_from([1, 3, 1000]))
def test_random_draws_per_row_as_one_by_one(rows: list[int], r: int, spread: int) -> None:
    # tiles look their random keys up per distinct row (marked in the rows' range, or sorted)
    from patternc.lower.predicate import Drawn, _per_row
    from patternc.rng import random_keys

    x = np.array(rows, dtype=np.int64).reshape(-1, 1) * spread
    want = random_keys(r, 7, x.reshape(-1), 50)
    # the classification's draws of a range of rows, covering x or not
    known = np.arange(-20, 300, dtype=np.int64)
    drawn = Drawn.of(known, random_keys(r, 7, known, 50))
    assert drawn is not None and Drawn.of(known[::2], random_keys(r, 7, known[::2], 50)) is None
    for d in (None, drawn):
        got = _per_row(x, lambda q: random_keys(r, 7, q, 50), d)
        assert len(got) == want.shape[1]
        for t, col in enumerate(got):
            assert col.shape == x.shape
            np.testing.assert_array_equal(col.reshape(-1), want[:, t])


@given(st.integers(1, 60), st.integers(1, 60), block_sizes, block_sizes, st.data())
def test_interval_rows_as_painted_intervals(nq: int, nk: int, bq: int, bk: int, data: st.DataObject) -> None:
    # rows of one key interval (window, causal, blocks) are built run by run in order, without
    # the sort of from_intervals: the same runs
    from patternc.lower import rle
    from patternc.lower.blocks import Geometry, interval_rows

    g = Geometry(nq, nk, bq, bk)
    R, C = g.nqb, g.nkb
    ints = st.lists(st.integers(-10, 70), min_size=R, max_size=R)
    lo = np.array(data.draw(ints))
    hi = lo + np.array(data.draw(st.lists(st.integers(-5, 40), min_size=R, max_size=R)))
    f_lo = lo + np.array(data.draw(st.lists(st.integers(0, 20), min_size=R, max_size=R)))
    f_hi = hi - np.array(data.draw(st.lists(st.integers(0, 20), min_size=R, max_size=R)))
    got = interval_rows(g, lo, hi, f_lo, f_hi)
    # the same blocks by the definition: non-empty where the union meets the block, FULL inside
    # the intersection
    want = np.full((R, C), rle.EMPTY, dtype=np.uint8)
    for r in range(R):
        for c in range(C):
            j0, j1 = c * bk, min((c + 1) * bk, nk) - 1
            if max(lo[r], 0, j0) <= min(hi[r], nk - 1, j1):
                want[r, c] = rle.FULL if f_lo[r] <= j0 and j1 <= f_hi[r] else rle.PARTIAL
    np.testing.assert_array_equal(rle.to_dense(got), want)
    np.testing.assert_array_equal(got.row, rle.from_dense(want).row)  # coalesced


@settings(max_examples=60)
@given(st.integers(0, 4), st.integers(1, 6), st.integers(0, 3), st.integers(1, 70), st.integers(1, 70),
       st.integers(1, 9), st.integers(1, 3), st.booleans())
def test_random_blocks_per_draw_and_spread(r: int, b: int, seed: int, nq: int, nk: int, bq: int, mult: int,
                                           divides: bool) -> None:
    # key blocks that are multiples of b take one point per draw; others spread each draw over
    # the key blocks it meets; both are counted per block against the reference
    bk = b * mult if divides else b * mult + 1
    check_plan(ir.RandomBlocks(r, b, seed), nq, nk, bq, bk)
    check_plan(ir.RandomBlocks(r, b, seed) | ir.Band(3), nq, nk, bq, bk)


@settings(max_examples=40, deadline=None)
@given(patterns(heads=True, max_leaves=5), lengths(max_n=400), st.sampled_from([16, 32, 64]))
def test_consecutive_block_lists_give_their_bases(node: ir.Node, nqk: tuple[int, int], block: int) -> None:
    # where Runs.bases says a group's rows are consecutive, every row lists base, base + 1, ...
    # (the forward kernel then computes the blocks instead of loading them)
    nq, nk = nqk
    plan = lower(ir.concretize(node, nk), nq, nk, block_q=block, block_k=block, heads=ir.head_counts(node))
    for tables in (plan.forward, plan.backward):
        for runs, num, idx in ((tables.runs, tables.num, tables.idx), (tables.full_runs, tables.full_num,
                                                                        tables.full_idx)):
            ok, base = runs.bases(*num.shape)
            assert ok.shape == (num.shape[0],) and base.shape == tuple(num.shape)
            for g in np.flatnonzero(ok):
                width = torch.arange(idx.shape[2])
                want = torch.from_numpy(base[g]).long()[:, None] + width[None, :]
                listed = width[None, :] < num[g].long()[:, None]
                assert torch.equal(idx[g].long()[listed], want[listed])


def test_block_local_rows_are_consecutive_and_band_edges_are_not() -> None:
    blc = lower(ir.Blocks(256) & ir.Causal(), 1024, 1024, block_q=64, block_k=64)
    (ok_p, base_p), (ok_f, base_f) = (r.bases(1, 16) for r in (blc.forward.runs, blc.forward.full_runs))
    assert ok_p.tolist() == ok_f.tolist() == [True]
    rows = np.arange(16)
    assert (base_p[0] == rows).all()  # the diagonal block
    assert (base_f[0][rows % 4 > 0] == (rows - rows % 4)[rows % 4 > 0]).all()  # the block's first
    band = lower(ir.Band(256), 1024, 1024, block_q=64, block_k=64)
    assert band.forward.runs.bases(1, 16)[0].tolist() == [False]  # the two edge blocks of a row
    assert band.forward.full_runs.bases(1, 16)[0].tolist() == [True]
