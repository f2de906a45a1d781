"""Per-pattern forward tile choice (``patternc.runtime.forward.dense_config``): dense patterns take
the larger tiles on the GPU, sparse ones keep the default; the interpreter and fp32 never change."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
import torch

from patternc import ir

# the module (``patternc.runtime.forward`` the attribute is the function of the same name)
fwd = importlib.import_module("patternc.runtime.forward")


@pytest.fixture
def on_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the choice itself is host code: pretend the kernels run on a GPU
    monkeypatch.setattr(fwd, "interpreting", lambda: False)
    monkeypatch.setattr(fwd, "large_smem", lambda device: True)
    fwd.dense_config.cache_clear()
    yield
    fwd.dense_config.cache_clear()


@pytest.mark.usefixtures("on_gpu")
@pytest.mark.parametrize(("node", "dense"), [
    (ir.Causal(), True), (ir.Prefix(3000) | ir.Causal(), True), (ir.Full(), True),
    (ir.Band(256), False), (ir.Strided(128) & ir.Causal() | ir.Window(127, 0), False),
    (ir.Heads((ir.Causal(), ir.Band(64))), False),
])
def test_dense_patterns_take_the_large_tiles(node: ir.Node, dense: bool) -> None:
    # sparse ones keep the rule's 64x64 blocks (short rows may change stages: test_tiles.py)
    for D, large in ((64, fwd.DENSE_D64), (128, fwd.DENSE_D128)):
        base = fwd.default_config(8192, 8192, D, torch.bfloat16, False)
        got = fwd.dense_config(node, base, 8192, 8192, 4, D, torch.bfloat16)
        if dense:
            assert got == large
        else:
            assert (got.block_q, got.block_k) == (base.block_q, base.block_k)


@pytest.mark.usefixtures("on_gpu")
def test_large_tiles_only_for_16_bit_small_heads_and_long_sides() -> None:
    for D, dtype, nq in ((256, torch.bfloat16, 8192), (64, torch.float32, 8192), (64, torch.float16, 100)):
        base = fwd.default_config(nq, 8192, D, dtype, False)
        assert fwd.dense_config(ir.Causal(), base, nq, 8192, 4, D, dtype) == base


def test_interpreter_keeps_its_blocks() -> None:
    base = fwd.default_config(8192, 8192, 64, torch.bfloat16, True)
    assert fwd.dense_config(ir.Causal(), base, 8192, 8192, 4, 64, torch.bfloat16) == base


# --------------------------------------------------------------------------- autotuning cache

tune = importlib.import_module("patternc.runtime.autotune")


@pytest.fixture
def tune_dir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATTERNC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tune, "_TABLE", None)
    yield
    tune._TABLE = None


def test_key_buckets_lengths_and_names_everything_that_changes_the_choice() -> None:
    q = torch.zeros(1, 8, 3000, 64)
    k = torch.zeros(1, 2, 5000, 64)
    key = tune.key("fwd", ir.Causal(), q, k)
    assert key == "fwd|causal|nq4096|nk8192|H8/2|D64|float32|cpu"
    assert tune.key("fwd", ir.Causal(), torch.zeros(1, 8, 4096, 64), k) == key
    assert tune.key("bwd", ir.Band(256), q, k) != key


@pytest.mark.usefixtures("tune_dir")
def test_best_skips_failing_candidates_and_the_table_survives_a_new_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cost = {"a": 3.0, "b": 1.0, "c": 2.0}

    def run(cfg: str) -> None:
        if cfg == "bad":
            raise RuntimeError("out of shared memory")

    monkeypatch.setattr(tune, "_time", lambda fn: cost[fn.args[0]])
    best, times = tune._best(run, ["a", "bad", "b", "c"])
    assert best == "b" and set(times) == {"'a'", "'b'", "'c'"}
    tune._store("k1", {"config": [128, 64, 4, 4]})
    tune._store("k2", {"config": [64, 64, 4, 3]})
    tune._TABLE = None  # what another process would read
    assert tune._table() == {"k1": {"config": [128, 64, 4, 4]}, "k2": {"config": [64, 64, 4, 3]}}


@pytest.mark.usefixtures("tune_dir")
def test_off_by_default_and_cpu_tensors_keep_the_rule_based_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATTERNC_AUTOTUNE", raising=False)
    monkeypatch.setattr(tune, "_ENABLED", None)
    assert not tune.enabled()
    monkeypatch.setenv("PATTERNC_AUTOTUNE", "1")
    assert tune.enabled()
    base = fwd.ForwardConfig(64, 64)
    q = torch.zeros(1, 2, 128, 64)
    assert tune.forward_config(ir.Causal(), q, q, q, None, base) is base


def test_candidates_fit_their_head_dims() -> None:
    assert tune._candidates(tune.FORWARD_CANDIDATES, 64) == tune.FORWARD_CANDIDATES[64]
    assert tune._candidates(tune.FORWARD_CANDIDATES, 96) == tune.FORWARD_CANDIDATES[128]
    assert tune._candidates(tune.FORWARD_CANDIDATES, 256) == ()
    for d, cands in tune.BACKWARD_CANDIDATES.items():
        for c in cands:
            from patternc.codegen.backward import BackwardConfig

            BackwardConfig(*c).check()  # tiles divide the plan blocks
            assert d in (64, 128)


def test_backward_dense_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    bwd = importlib.import_module("patternc.runtime.backward")
    from patternc.codegen.backward import WIDE_STEPS

    monkeypatch.setattr(bwd, "interpreting", lambda: False)
    monkeypatch.setattr(bwd, "large_smem", lambda device: True)
    bwd.dense_config.cache_clear()
    # Hopper, D=128: 64-wide steps for dense and sparse patterns alike; D=64's rule already has them
    assert bwd.dense_config(ir.Causal(), 8192, 8192, 4, 128, torch.bfloat16) == WIDE_STEPS
    assert bwd.dense_config(ir.Band(256), 8192, 8192, 4, 128, torch.bfloat16) == WIDE_STEPS
    assert bwd.dense_config(ir.Causal(), 8192, 8192, 4, 64, torch.bfloat16) is None
    assert bwd.dense_config(ir.Causal(), 8192, 8192, 4, 128, torch.float32) is None
    monkeypatch.setattr(bwd, "large_smem", lambda device: False)  # e.g. an A100: 164 KiB
    bwd.dense_config.cache_clear()
    assert bwd.dense_config(ir.Causal(), 8192, 8192, 4, 128, torch.bfloat16) is None
    bwd.dense_config.cache_clear()


@pytest.mark.usefixtures("on_gpu")
def test_smaller_shared_memory_keeps_tiles_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fwd, "large_smem", lambda device: False)
    for D in (64, 128):
        base = fwd.default_config(8192, 8192, D, torch.bfloat16, False)
        got = fwd.dense_config(ir.Causal(), base, 8192, 8192, 4, D, torch.bfloat16, "cuda:1")
        assert got == (fwd.DENSE_D64_SMALL if D == 64 else base)
