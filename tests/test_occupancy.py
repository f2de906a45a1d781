"""Register caps (patternc.runtime.occupancy): which budget admits one more program per SM, and the
launcher's first call compiling under it where it spills little (stand-in kernels; the GPU test
``test_launch_gpu.py::test_register_caps_keep_results`` runs real ones)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patternc.runtime import launch as L
from patternc.runtime import occupancy as O
from patternc.runtime import reset

from .test_launch import FakeJit

H100_SMEM = 233472  # shared memory per SM


@given(st.integers(16, 255), st.sampled_from([1, 2, 4, 8]), st.integers(0, 200_000),
       st.sampled_from([H100_SMEM, 167936, 102400]))
def test_cap_admits_exactly_one_more_program(regs: int, warps: int, shared: int, smem: int) -> None:
    by_regs, by_rest = O.programs(regs, warps, shared, smem)
    cap = O.cap_for(regs, warps, shared, smem)
    if cap is None:  # registers do not bind, or the budget would be far below the kernel's
        budget = O.REGS_PER_SM // max(1, (by_regs + 1) * 32 * warps) // O.REG_UNIT * O.REG_UNIT
        assert not 0 < by_regs <= O.MAX_PROGRAMS or by_regs >= by_rest or budget < O.MIN_SHARE * regs
        return
    assert cap % O.REG_UNIT == 0 and O.MIN_SHARE * regs <= cap < regs
    assert O.programs(cap, warps, shared, smem)[0] > by_regs and by_regs < by_rest
    assert by_regs <= O.MAX_PROGRAMS
    assert O.programs(cap + O.REG_UNIT, warps, shared, smem)[0] == by_regs  # the largest such budget


def test_h100_kernels() -> None:
    # registers and shared memory of session 14's kernels at 64k tokens, D=64 (regs_ab.py)
    assert O.cap_for(127, 4, 40960, H100_SMEM) == 96  # block-local causal forward: 4 -> 5 programs
    assert O.cap_for(134, 4, 40960, H100_SMEM) == 128  # a residue launch: 3 -> 4
    assert O.cap_for(160, 4, 49664, H100_SMEM) == 128  # block-local dK/dV: 3 -> 4
    assert O.cap_for(122, 4, 57344, H100_SMEM) is None  # three stages: shared memory binds at 4
    assert O.cap_for(249, 4, 50176, H100_SMEM) is None  # 168 would be too far below 249
    assert O.cap_for(72, 4, 0, H100_SMEM) is None  # attn_merge: 7 programs already


class Kernel(SimpleNamespace):
    def _init_handles(self) -> None:
        self.loaded = True


class WarmJit(FakeJit):
    """A jit function that also compiles without launching: ``regs`` registers uncapped, spilling
    ``spills`` words under any cap."""

    def __init__(self, regs: int, spills: int, shared: int = 40960) -> None:
        super().__init__()
        self.regs, self.spills, self.shared = regs, spills, shared
        self.warm: list[dict[str, Any]] = []

    def warmup(self, *args: Any, grid: tuple[int, ...], **kwargs: Any) -> Kernel:
        self.warm.append(kwargs)
        cap = kwargs.get("maxnreg")
        return Kernel(n_regs=cap or self.regs, n_spills=self.spills if cap else 0,
                      metadata=SimpleNamespace(num_warps=kwargs.get("num_warps", 4), shared=self.shared))


@pytest.fixture
def h100(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "fast_enabled", lambda: True)
    monkeypatch.setattr(O, "smem_per_sm", lambda device: H100_SMEM)
    monkeypatch.delenv("PATTERNC_REG_CAP", raising=False)


@pytest.mark.usefixtures("h100")
@pytest.mark.parametrize(("regs", "spills", "want"), [(127, 2, 96), (127, 40, None), (120, 0, 96),
                                                      (90, 0, None)])
def test_options(regs: int, spills: int, want: int | None) -> None:
    fn = WarmJit(regs, spills)
    got = O.options(fn, (1,), (), {"num_warps": 4}, 0)
    assert got == ({} if want is None else {"maxnreg": want})
    assert len(fn.warm) == (1 if O.cap_for(regs, 4, 40960, H100_SMEM) is None else 2)


@pytest.mark.usefixtures("h100")
def test_off_or_set_by_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    fn = WarmJit(127, 0)
    assert O.options(fn, (1,), (), {"maxnreg": 200}, 0) == {}
    monkeypatch.setenv("PATTERNC_REG_CAP", "0")
    assert O.options(fn, (1,), (), {}, 0) == {} and not fn.warm


@pytest.mark.usefixtures("h100")
def test_the_first_launch_compiles_under_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(L, "_stream", lambda device: 77)
    monkeypatch.setattr(L, "_hooks", lambda: (None, None))
    monkeypatch.setattr(L, "_LAUNCHERS", {})
    fn = WarmJit(127, 0)
    fn.__name__ = "attn_fwd"
    x = torch.zeros(16)
    L.launch(fn, (4,), x, 5, 7, PRED=1, num_warps=4)
    L.launch(fn, (4,), x, 21, 7, PRED=1, num_warps=4)  # same specialization: direct, no compile
    assert [kw.get("maxnreg") for _, _, kw in fn.slow] == [96]
    assert len(fn.compiled.calls) == 1
    assert L.compiled_kernels() == [("attn_fwd", fn.compiled)]  # what ran, by name
    reset()  # the next call decides again
    assert L.compiled_kernels() == []
