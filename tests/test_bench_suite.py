"""The benchmark suite's pure-Python parts (benchmarks/suite_core.py, the CLI of
benchmarks/suite.py): pattern selection, TFLOP/s arithmetic, verdicts and tables. CPU only."""

from __future__ import annotations

import glob
import math
import os
import re
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import suite  # noqa: E402
import suite_core as sc  # noqa: E402
from anchors import PATTERNS  # noqa: E402

import patternc  # noqa: E402
from patternc import ir  # noqa: E402

CASES = sc.all_cases()


def names(cases: list[sc.Case]) -> list[str]:
    return [c.name for c in cases]


def test_every_stdlib_export_extra_and_anchor_is_measured_once() -> None:
    every = {s for c in CASES for s in (c.name, *c.aliases)}
    for path in glob.glob(os.path.join(sc.STDLIB_DIR, "*.sap")):
        assert set(patternc.load(path).exported) <= every, path
    assert {"band(256)", "causal", *PATTERNS} <= every
    nodes = [c.node for c in CASES]
    assert len(nodes) == len(set(nodes))  # one row per distinct pattern
    by_name = {s: c.node for c in CASES for s in (c.name, *c.aliases)}
    assert by_name["band(256)"] == ir.Band(256) and by_name["causal"] == ir.Causal()
    for name, node in PATTERNS.items():
        assert by_name[name] == node


def test_dedupe_keeps_first_name_and_collects_aliases() -> None:
    a, b, c = sc.Case("x", ir.Band(3), "s"), sc.Case("y", ir.Band(3), "t"), sc.Case("z", ir.Causal(), "u")
    out = sc.dedupe([a, b, c, a])
    assert [(k.name, k.aliases) for k in out] == [("x", ("y",)), ("z", ())]
    assert out[0].label == "x = y"


def test_only_exact_name_wins_over_substring() -> None:
    assert names(sc.select(CASES, ["causal"])) == ["dense_causal"]  # not every *_causal
    sub = sc.select(CASES, ["_causal"])
    assert len(sub) >= 4 and all("_causal" in c.name for c in sub)
    assert names(sc.select(CASES, ["longformer", "sliding_window"])) == ["longformer", "sliding_window"]
    assert sc.select(CASES, ["band(256)"])[0].name == "sliding_window"  # an alias is a name
    by_expr = sc.select(CASES, ["strided(128)"])
    assert [c.source for c in by_expr] == ["anchor"]
    assert sc.select(CASES, ["no such pattern"]) == []


@given(st.integers(1, 9))
def test_shards_partition_the_selection(k: int) -> None:
    shards = [sc.select(CASES, None, (i, k)) for i in range(1, k + 1)]
    flat = [c.name for s in shards for c in s]
    assert sorted(flat) == sorted(names(CASES))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_bad_shards_are_refused() -> None:
    assert sc.parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x/3", "3"):
        with pytest.raises(ValueError):
            sc.parse_shard(bad)
    with pytest.raises(ValueError):
        sc.select(CASES, None, (5, 4))


@given(st.integers(1, 10**12), st.sampled_from([64, 128]), st.integers(1, 4),
       st.floats(1e-3, 1e3), st.booleans())
def test_useful_tflops_is_pairs_times_flops_over_time(nnz: int, d: int, b: int, ms: float, bwd: bool) -> None:
    t = sc.useful_tflops(nnz, d, b, ms, bwd)
    assert t is not None
    assert math.isclose(t * 1e12 * ms / 1e3, (2.5 if bwd else 1) * 4 * nnz * d * b, rel_tol=1e-9)


def test_useful_tflops_known_value_and_missing_times() -> None:
    # DESIGN.md: dense cuDNN forward at 64k, D=64, H=16 in 36.7 ms is about 480 TFLOP/s
    t = sc.useful_tflops(16 * 65536 * 65536, 64, 1, 36.7)
    assert t is not None and 475 < t < 485
    assert sc.useful_tflops(10, 64, 1, None) is None and sc.useful_tflops(10, 64, 1, 0.0) is None


def test_ratios_and_verdicts() -> None:
    assert sc.speedup(2.0, 3.0) == 1.5 and sc.speedup(None, 3.0) is None and sc.speedup(2.0, None) is None
    assert sc.best(None, 3.0, 2.0) == 2.0 and sc.best(None, None) is None
    assert sc.verdict(None, 0.1) == "unchecked"
    assert sc.verdict(0.05, 0.1) == "ok" and sc.verdict(0.2, 0.1) == "WRONG"
    assert sc.verdict(float("nan"), 0.1) == "WRONG"


def row(**kw: object) -> dict:
    base = dict(name="p", label="band(8) | global([0])", expr="band(8) | global([0])", N=65536, D=64,
                nnz=16 * 1000 * 65536, density=0.01)
    return {**base, **kw}


def test_derive_uses_the_faster_flex_and_the_checks() -> None:
    r = sc.derive(row(ours_fwd_ms=1.0, flex_fwd_ms=3.0, flex_cbm_fwd_ms=2.0, fwd_max_abs_err=0.004,
                      ours_bwd_ms=2.0, flex_bwd_ms=1.0, bwd_max_rel_err=dict(dq=0.001, dk=0.5, dv=0.0),
                      cudnn_fwd_ms=10.0), batch=1)
    assert r["flex_fwd_best_ms"] == 2.0 and r["fwd_vs_flex"] == 2.0 and r["fwd_vs_cudnn"] == 10.0
    assert r["fwd_check"] == "ok" and r["bwd_check"] == "WRONG"  # the worst gradient decides
    assert r["bwd_vs_flex"] == 0.5
    assert r["ours_fwd_tflops"] == sc.useful_tflops(r["nnz"], 64, 1, 1.0)
    assert r["flex_fwd_tflops"] == sc.useful_tflops(r["nnz"], 64, 1, 2.0)


def cells(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_table_lines_have_the_header_cells_and_hide_wrong_ratios() -> None:
    r = sc.derive(row(ours_fwd_ms=0.5, flex_fwd_ms=1.0, fwd_max_abs_err=0.9, ours_bwd_ms=1.0,
                      flex_bwd_error="OutOfMemoryError: CUDA out of memory", cbm_error="boom"), batch=1)
    fl, bl = sc.fwd_line(r), sc.bwd_line(r)
    for line, head in ((fl, sc.FWD_HEAD), (bl, sc.BWD_HEAD)):
        title, rule = head.splitlines()
        assert len(cells(line)) == len(cells(title)) == len(cells(rule))
    assert "band(8) \\| global([0])" in fl
    assert "**WRONG**" in fl and "2.00x" not in fl  # a wrong kernel posts no ratio
    assert cells(bl)[5].strip() == "OOM" and cells(fl)[7].strip() == "err"
    assert "unchecked" in bl


def result(rows: list[dict], date: str = "2026-11-22 10:00 UTC") -> dict:
    meta = dict(date=date, gpu="NVIDIA H100 80GB HBM3", torch="2.11", triton="3.6", patternc="0.1.0",
                commit="abc", B=1, H=16, dtype="torch.bfloat16", argv=["benchmarks/suite.py", "--n", "65536"])
    return dict(meta=meta, rows=rows, dense=[dict(N=65536, D=64, backend="cudnn", causal=False, fwd_ms=36.7)],
                slices=[dict(N=65536, D=64, rows=len(rows), wall_s=12.0)], skipped=[])


def test_markdown_names_the_run_and_lists_misses() -> None:
    slow = row(name="a", label="a", ours_fwd_ms=2.0, flex_fwd_ms=1.0, fwd_max_abs_err=0.001)
    fast = row(name="b", label="b", nnz=16 * 65536 * 65536 // 2, ours_fwd_ms=10.0, flex_fwd_ms=20.0,
               fwd_max_abs_err=0.001)
    text = sc.markdown(result([slow, fast]))
    assert "NVIDIA H100 80GB HBM3" in text and "torch 2.11" in text
    assert "`python benchmarks/suite.py --n 65536`" in text
    assert "Backward:" not in text  # no backward measured
    assert text.count("\n| `") == 2
    assert "a N=65536 D=64 fwd: 0.50x FlexAttention" in text
    assert "b N=65536 D=64 fwd" not in text  # 2x flex and 1718 TFLOP/s: no miss
    assert "| 65536 | 64 | cudnn | full | 36.700 | 479 |" in text
    assert "N=65536 D=64: 12 s (2 rows)" in text


def test_misses_target_floor_only_at_64k_d64() -> None:
    low = dict(nnz=16 * 1000 * 65536, ours_fwd_ms=3.0)  # ~89 TFLOP/s, no flex time
    assert any("< 150" in m for m in sc.misses([sc.derive(row(**low), 1)]))
    assert not sc.misses([sc.derive(row(**low, N=4096), 1)])


def test_merge_concatenates_calls() -> None:
    a, b = result([row(name="a")]), result([row(name="b")], date="2026-11-22 11:00 UTC")
    m = sc.merge([a, b])
    assert [r["name"] for r in m["rows"]] == ["a", "b"] and len(m["slices"]) == 2
    assert [c["date"] for c in m["meta"]["calls"]] == ["2026-11-22 10:00 UTC", "2026-11-22 11:00 UTC"]
    assert "(2026-11-22 11:00 UTC)" in sc.markdown(m)
    with pytest.raises(ValueError):
        sc.merge([])


def test_command_line() -> None:
    o = suite.parser().parse_args(["--n", "4096,65536", "--d", "64", "--only", "a b", "c", "--only", "d",
                                   "--shard", "1/2", "--fwd-only"])
    assert o.n == [4096, 65536] and o.d == [64] and o.only == ["a b", "c", "d"]
    assert o.shard == (1, 2) and o.fwd_only and not o.no_cbm
    assert suite.default_json(o).endswith("bench_suite_n4096-65536_d64_s1of2.json")
    d = suite.parser().parse_args([])
    assert d.n == [4096, 16384, 65536] and d.d == [64, 128] and d.only is None


def test_list_prints_the_selection(capsys: pytest.CaptureFixture[str]) -> None:
    suite.main(["--list", "--only", "longform"])
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["longformer", "longformer_dilated", "longformer_heads"]
    suite.main(["--list", "--only", "longformer"])
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["longformer"]


def test_old_bench_scripts_map_to_the_suite() -> None:
    import bench_forward

    env = dict(NS="4096", HEAD_DIM="128", ONLY="band", OUT="/o")
    args = bench_forward.suite_args(env, True, "1", "f.json")
    assert args == ["--set", "anchors", "--n", "4096", "--d", "128", "--json", "/o/f.json", "--only", "band",
                    "--fwd-only"]
    assert suite.parser().parse_args(args).d == [128]


def test_block_sets_compare_flex_block_masks() -> None:
    from torch.nn.attention.flex_attention import create_block_mask

    from patternc.flex import to_flex

    node = ir.Band(100) | ir.Global(ir.TokenList.of(ir.Range(0, 3)))
    ours = to_flex(node, 512)
    theirs = create_block_mask(ours.mask_mod, None, None, 512, 512, device="cpu")
    assert suite.same_blocks(ours, theirs, 4)
    partial, full = suite.block_sets(ours, 4)
    assert partial.shape == (1, 4, 4, 4) and not (partial & full).any()
    assert not suite.same_blocks(ours, to_flex(ir.Band(100), 512), 4)


@given(st.integers(1, 40))
def test_warm_up_workers_get_every_case_exactly_once(jobs: int) -> None:
    chunks = sc.warm_chunks(CASES, jobs)
    assert len(chunks) == min(jobs, len(CASES)) and all(chunks)
    assert sorted(x for c in chunks for x in c) == sorted(names(CASES))
    argv = sc.warm_argv(chunks[0], 4096, 128, ["--fwd-only"], "/t/w.json")
    o = suite.parser().parse_args(argv)
    assert o.warm_only and o.no_dense and o.fwd_only and o.n == [4096] and o.d == [128]
    assert names(sc.select(CASES, o.only)) == chunks[0]  # exact names pick exactly the chunk


@pytest.mark.parametrize("n", [1024, 1000])
def test_design_anchor_mask_mods_are_the_anchor_patterns(n: int) -> None:
    """benchmarks/design_anchors.py times FlexAttention on DESIGN.md's tensor-reading mask_mods:
    each must be exactly its anchor pattern (the reference's dense mask), random blocks included."""
    import design_anchors
    import torch

    from patternc.reference import mask

    mods = design_anchors.design_mods(n, "cpu")
    q, k, zero = torch.arange(n)[:, None], torch.arange(n)[None, :], torch.zeros((), dtype=torch.int64)
    for name, node in PATTERNS.items():
        got = mods[name](zero, zero, q, k)
        assert got.shape == (n, n)
        assert bool((got == mask(node, n)).all()), name


def test_design_anchor_table_has_ratios_and_checks() -> None:
    import design_anchors

    row = dict(pattern="band(256) | global([0..16])", N=65536, D=64, nnz=10**9)
    for p in ("fwd", "bwd"):
        row.update({f"ours_{p}_ms": 1.0, f"design_{p}_ms": 20.0, f"to_flex_{p}_ms": 3.0})
    row.update(design_fwd_max_abs_err=0.004, to_flex_fwd_max_abs_err=0.004,
               design_bwd_max_rel_err={"dq": 0.01}, to_flex_bwd_max_rel_err={"dq": 0.01})
    text = design_anchors.line(row)
    assert text.count("|") - text.count("\\|") == 13
    assert "20.00x" in text and "3.00x" in text and text.rstrip(" |").endswith("ok")
    row["to_flex_bwd_max_rel_err"] = {"dq": 0.5}
    assert design_anchors.line(row).rstrip(" |").endswith("WRONG")
