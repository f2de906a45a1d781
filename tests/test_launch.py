"""Direct launches (patternc.runtime.launch): the specialization key and the argument order of the
fast path, against a stand-in kernel (the real launcher runs in the GPU tests)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from patternc.runtime import launch as L


class FakeCompiled:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.function, self.packed_metadata = "fn", "meta"

    def run(self, *args: Any) -> None:
        self.calls.append(args)

    def launch_metadata(self, *args: Any) -> None:
        return None


class FakeJit:
    """A jit function's surface: ``signature`` and ``fn[grid](*args, **kwargs)`` -> compiled kernel."""

    def __init__(self) -> None:
        def kernel(X, n, s, PRED, FLAG=False, MODE=3):  # type: ignore[no-untyped-def]
            pass

        self.signature = inspect.signature(kernel)
        self.compiled = FakeCompiled()
        self.slow: list[tuple[Any, ...]] = []

    def __getitem__(self, grid: tuple[int, ...]) -> Any:
        def call(*args: Any, **kwargs: Any) -> FakeCompiled:
            self.slow.append((grid, args, kwargs))
            return self.compiled
        return call


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "fast_enabled", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(L, "_stream", lambda device: 77)
    monkeypatch.setattr(L, "_hooks", lambda: (None, None))


def test_spec_follows_what_triton_specializes() -> None:
    assert L._spec(1) != L._spec(2) != L._spec(16)  # == 1, % 16, neither
    assert L._spec(32) == L._spec(48) and L._spec(3) == L._spec(19) != L._spec(5)
    assert L._spec(1 << 40) != L._spec(16)  # 64-bit
    assert L._spec(1) != L._spec(17) and L._spec(1) != L._spec(-15)  # 1 is a constant to Triton
    a = torch.zeros(64)
    assert L._spec(a) == L._spec(torch.ones(8)) and L._spec(a[1:]) != L._spec(a)  # 16-byte alignment
    assert L._spec(a.half()) != L._spec(a)
    assert L._spec(0.5) == L._spec(2.0) and L._spec(True) == L._spec(False)


def _triton_spec() -> Callable[[object], object]:
    """Triton's own specialization of one argument (the native one of Triton >= 3.4)."""
    try:
        from triton._C.libtriton import native_specialize_impl
        from triton.backends.compiler import BaseBackend
    except ImportError:  # an older Triton: its Python specialization has another signature
        pytest.skip("this Triton has no native_specialize_impl")
    return lambda a: native_specialize_impl(BaseBackend, a, False, True, True)


EDGES = (0, 1, 2, 16, 17, 33, -15, -16, (1 << 31) - 1, 1 << 31, -(1 << 31), -(1 << 31) - 1, 1 << 40)
ARGS = st.one_of(st.integers(-40, 80), st.sampled_from(EDGES), st.integers(-(1 << 62), 1 << 62),
                 st.booleans(), st.floats(allow_nan=False), st.none())


@given(ARGS)
def test_equal_keys_mean_equal_triton_specializations(a: object) -> None:
    # the direct launch reuses a compiled kernel for every argument with the same key: the key
    # must be at least as fine as what Triton compiles into the kernel (session 6's fault: 1 and 17)
    spec = _triton_spec()
    near = (a + 16, a - 16, a + (1 << 32), a * 16) if type(a) is int else ()
    for b in (*EDGES, 0.5, True, None, *near):
        if L._spec(a) == L._spec(b):
            assert spec(a) == spec(b), (a, b)


def test_equal_keys_mean_equal_triton_specializations_of_tensors() -> None:
    spec = _triton_spec()
    x = torch.zeros(64)
    views = [x, x[1:], x[4:], x[8:], x.half(), x.half()[8:], x.double()[2:],
             torch.zeros(3, dtype=torch.int32)]
    for a in views:
        for b in views:
            if L._spec(a) == L._spec(b):
                assert spec(a) == spec(b)


def test_second_call_goes_direct_with_constexprs_and_defaults_in_order(fast: None) -> None:
    fn = FakeJit()
    x = torch.zeros(16)
    L.launch(fn, (4, 2), x, 5, 7, PRED=1, num_warps=4)
    assert len(fn.slow) == 1 and not fn.compiled.calls  # the first call is Triton's
    L.launch(fn, (8,), x, 21, 39, PRED=1, num_warps=4)  # the same values mod 16
    assert len(fn.slow) == 1
    (call,) = fn.compiled.calls
    # grid padded to 3-D, stream, function, metadata, hooks, then every parameter in order
    assert call == (8, 1, 1, 77, "fn", "meta", None, None, None, x, 21, 39, 1, False, 3)


def test_a_new_specialization_goes_through_triton_again(fast: None) -> None:
    fn = FakeJit()
    x = torch.zeros(64)
    L.launch(fn, (1,), x, 5, 7, PRED=1)
    L.launch(fn, (1,), x, 16, 7, PRED=1)  # n divisible by 16: another kernel
    L.launch(fn, (1,), x[1:], 5, 7, PRED=1)  # misaligned pointer
    L.launch(fn, (1,), x, 5, 7, PRED=2)  # another constexpr
    L.launch(fn, (1,), x, 5, 7, PRED=1, FLAG=True)
    assert len(fn.slow) == 5 and not fn.compiled.calls
    L.launch(fn, (1,), x, 21, 7, PRED=1, FLAG=True)
    assert len(fn.slow) == 5 and fn.compiled.calls[0][-3:] == (1, True, 3)


def test_off_on_the_interpreter_and_one_launcher_per_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not L.fast_enabled()
    fn = FakeJit()
    x = torch.zeros(16)
    for _ in range(2):
        L.launch(fn, (1,), x, 5, 7, PRED=1)
    assert len(fn.slow) == 2 and not fn.compiled.calls
    assert L.launcher(fn) is L.launcher(fn)


def test_unexpected_kernel_objects_keep_the_plain_call(fast: None) -> None:
    fn = FakeJit()
    fn.compiled = None  # type: ignore[assignment]  # e.g. a Triton whose run returns nothing
    x = torch.zeros(16)
    for _ in range(3):
        L.launch(fn, (1,), x, 5, 7, PRED=1)
    assert len(fn.slow) == 3


def test_env_flags_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from patternc.runtime.cache import env_flag

    monkeypatch.delenv("PATTERNC_X", raising=False)
    assert env_flag("PATTERNC_X", True) and not env_flag("PATTERNC_X", False)
    for off in ("0", "false", " No ", "OFF"):
        monkeypatch.setenv("PATTERNC_X", off)
        assert not env_flag("PATTERNC_X", True) and not env_flag("PATTERNC_X", False)
    for on in ("1", "true", "Yes", "on"):
        monkeypatch.setenv("PATTERNC_X", on)
        assert env_flag("PATTERNC_X", True) and env_flag("PATTERNC_X", False)
    monkeypatch.setenv("PATTERNC_X", "")
    assert env_flag("PATTERNC_X", True) and not env_flag("PATTERNC_X", False)


def test_prepared_launch_fills_its_slots_and_keys_only_them(fast: None) -> None:
    fn = FakeJit()
    x, y, z = torch.zeros(16), torch.ones(16), torch.zeros(32)
    site = L.Prepared(fn, (3,), (L.Slot(1), 5, 7), dict(PRED=1, num_warps=4))
    site((z, x))  # the first call of a key goes through Triton, with the slot filled
    assert fn.slow == [((3,), (x, 5, 7), dict(PRED=1, num_warps=4))] and not fn.compiled.calls
    site((x, y))  # another tensor, same dtype and alignment: direct, with that tensor's address
    site((x, z[4:]))  # 16-byte aligned too
    assert len(fn.slow) == 1
    first, second = fn.compiled.calls
    assert first[9] == y.data_ptr() and second[9] == z[4:].data_ptr()
    assert first[10:] == second[10:] == (5, 7, 1, False, 3)  # the fixed arguments, then constexprs
    assert fn.compiled.calls[0][:9] == (3, 1, 1, 77, "fn", "meta", None, None, None)
    site((x, z[1:]))  # misaligned: Triton again (another specialization)
    site((x, y.half()))  # another dtype: Triton again
    assert len(fn.slow) == 3 and fn.slow[1][1][0] is not fn.slow[2][1][0]
    assert fn.slow[1][1][0].data_ptr() == z[1:].data_ptr()


def test_prepared_launch_off_on_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    fn = FakeJit()
    x, y = torch.zeros(16), torch.ones(16)
    site = L.Prepared(fn, (1,), (L.Slot(0), 2, L.Slot(1)), dict(PRED=0))
    site((x, y))
    site((y, x))
    assert [[id(a) for a in call[1]] for call in fn.slow] == [[id(x), id(2), id(y)], [id(y), id(2), id(x)]]
    assert not fn.compiled.calls


def test_prepared_launch_passes_addresses_unless_a_hook_wants_tensors(
        fast: None, monkeypatch: pytest.MonkeyPatch) -> None:
    fn = FakeJit()
    w, x = torch.zeros(16), torch.ones(16)
    site = L.Prepared(fn, (1,), (L.Slot(0), w, 7), dict(PRED=1))
    site((x,))
    site((x,))  # direct: every tensor, fixed or filled in, by its address
    assert fn.compiled.calls[0][9:12] == (x.data_ptr(), w.data_ptr(), 7)
    hook = object()
    monkeypatch.setattr(L, "_hooks", lambda: (hook, None))
    site((x,))  # a profiler's hook gets the tensors themselves
    call = fn.compiled.calls[1]
    assert call[7] is hook and call[9] is x and call[10] is w
