"""Repeat launches of compiled Triton kernels without Triton's per-call argument binding.

``kernel[grid](*args, **constexprs)`` (Triton's ``JITFunction.run``) binds and specializes every
argument, hashes the result and looks the kernel up, on every call: with the 40 to 60 arguments of
our kernels that is tens of microseconds of host time per launch (measured on the H100 host:
a 4k-token backward spent ~0.4 ms on the host for 70 us of GPU work), more than a small kernel
runs. :func:`launch` makes the first call of each *specialization* through Triton, keeps the
``CompiledKernel`` it returns, and afterwards calls the kernel's launcher directly. That first
call also settles the kernel's register budget (``runtime.occupancy``: capped where registers,
not shared memory, bound the programs per SM).

The specialization key is at least as fine as what Triton specializes on (per tensor its dtype and
whether its address is 16-byte aligned, per integer whether it is 1, divisible by 16 and fits 32
bits), plus the constexpr keywords, the launch options and the device. A key seen before reuses
its kernel; a new one goes through Triton (which compiles or finds it). Off on Triton's
interpreter, and whenever Triton lacks the launcher API (then every call is the plain one);
``PATTERNC_FAST_LAUNCH=0`` turns it off.

:class:`Prepared` goes further for launch sites called again and again with new tensors and
nothing else new (the forward and backward kernels): their other arguments are built and keyed
once, and a call keys only its tensors.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from patternc.runtime import occupancy
from patternc.runtime.cache import env_flag

_ENABLED = env_flag("PATTERNC_FAST_LAUNCH", True)
_INT32 = (-(1 << 31), (1 << 31) - 1)
MAX_KEYS = 1024  # specializations remembered per kernel


def _spec(a: Any) -> Any:
    """What Triton specializes a kernel argument on (``triton.runtime.jit.specialize_impl``), or
    finer: per tensor its dtype and address mod 16, per 32-bit integer -1 for 1 (a constant to
    Triton) or its value mod 16, a wider integer its value, anything else its type."""
    return _key((a,))[0]


def _key(args: tuple[Any, ...], lo: int = _INT32[0], hi: int = _INT32[1],
         tensor: Any = torch.Tensor) -> tuple[Any, ...]:
    # one comprehension, no call per argument: this runs on every launch. Integers are tested
    # first: ``isinstance(x, torch.Tensor)`` goes through torch's metaclass and costs ~0.13 us on
    # a non-tensor (VM, 60 arguments: 13.5 -> 8.2 us)
    # an int equal to 1 gets its own key (-1, which no other int maps to): Triton compiles it as the
    # constant 1, so 17 or 33 (1 mod 16) must not reuse that kernel
    return tuple([(-1 if a == 1 else a & 15 if lo <= a <= hi else a) if type(a) is int else
                  (a.dtype, a.data_ptr() & 15) if isinstance(a, tensor) else type(a)
                  for a in args])


class _Compiled:
    """A compiled kernel and the tail of its parameter list (constexprs and defaults)."""

    __slots__ = ("kernel", "run", "tail")

    def __init__(self, kernel: Any, tail: tuple[Any, ...]) -> None:
        self.kernel = kernel
        self.run = kernel.run
        self.tail = tail


class Launcher:
    """Launches of one ``@triton.jit`` function, compiled kernels cached per specialization."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.hits: dict[tuple[Any, ...], _Compiled | None] = {}
        sig = getattr(fn, "signature", None)  # the kernel's inspect.Signature
        params = list(sig.parameters.values()) if isinstance(sig, inspect.Signature) else None
        self.names: Sequence[str] | None = None if params is None else [p.name for p in params]
        self.defaults: dict[str, Any] = {} if params is None else {
            p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    def __call__(self, grid: tuple[int, ...], *args: Any, **kwargs: Any) -> None:
        self.call(grid, args, kwargs)

    def call(self, grid: tuple[int, ...], args: Sequence[Any], kwargs: dict[str, Any]) -> _Compiled | None:
        """Launch; return the compiled kernel used (None: no direct form, or direct launches off)."""
        if not fast_enabled():
            self.fn[grid](*args, **kwargs)
            return None
        device = torch.cuda.current_device()
        key = (device, _key(tuple(args)), tuple(kwargs.items()))
        if key not in self.hits:  # first call of this specialization: Triton binds, compiles or finds it
            if len(self.hits) >= MAX_KEYS:  # many shapes' strides: start over rather than grow
                self.hits.clear()
            # registers capped where that fits one more program per SM (``runtime.occupancy``)
            kernel = self.fn[grid](*args, **kwargs, **occupancy.options(self.fn, grid, args, kwargs, device))
            self.hits[key] = self._compiled(kernel, len(args), kwargs)
            return self.hits[key]
        hit = self.hits[key]
        if hit is None:  # no fast path for this kernel (an unexpected Triton object)
            self.fn[grid](*args, **kwargs)
            return None
        _run(hit, grid, device, args)
        return hit

    def _compiled(self, kernel: Any, n_args: int, kwargs: dict[str, Any]) -> _Compiled | None:
        """The direct form of ``kernel``, or None where this Triton's objects are not as expected."""
        if self.names is None or not all(hasattr(kernel, a) for a in ("run", "function", "packed_metadata",
                                                                       "launch_metadata")):
            return None
        rest = self.names[n_args:]
        missing = [n for n in rest if n not in kwargs and n not in self.defaults]
        if missing:
            return None
        tail = tuple(kwargs[n] if n in kwargs else self.defaults[n] for n in rest)
        return _Compiled(kernel, tail)


def _run(hit: _Compiled, grid: tuple[int, ...], device: int, args: Sequence[Any]) -> None:
    """Launch ``hit`` through its launcher: what ``JITFunction.run`` ends with."""
    _launch_with(hit, grid, device, args, _hooks())


def _launch_with(hit: _Compiled, grid: tuple[int, ...], device: int, args: Sequence[Any],
                 hooks: tuple[Callable[..., Any] | None, Callable[..., Any] | None]) -> None:
    enter, leave = hooks
    stream = _stream(device)
    meta = hit.kernel.launch_metadata(grid, stream, *args, *hit.tail) if enter is not None else None
    hit.run(grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1, stream,
            hit.kernel.function, hit.kernel.packed_metadata, meta, enter, leave, *args, *hit.tail)


class Slot:
    """A placeholder among a :class:`Prepared` launch's arguments: the ``index``-th tensor of each call."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


_MISS = object()


class Prepared:
    """One launch site whose arguments are all fixed but for some tensors, marked :class:`Slot`.

    Its specializations differ only in those tensors' dtypes and alignments, so a call keys just
    them, and takes a kernel it has seen for that key without building or keying the 40 to 80
    other arguments again. Direct launches pass every tensor as its address (an ``int``, which
    Triton's launcher takes as a pointer as it is): the launcher then neither calls back into
    Python for ``data_ptr()`` nor asks the driver about each pointer (``cuPointerGetAttribute``),
    once per tensor argument and launch. The caller keeps one per distinct set of fixed arguments:
    the tensors' strides and shapes among them, and keeps the tensors valid (inputs are checked
    before they get here). ``prepared(tensors)`` launches with ``tensors[slot.index]`` in each slot.
    """

    __slots__ = ("args", "direct", "grid", "hits", "kwargs", "launcher", "raw", "slots", "take")

    def __init__(self, fn: Any, grid: tuple[int, ...], args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        self.launcher = launcher(fn)
        self.grid = grid
        self.args = list(args)
        # the fixed tensors by address, for direct launches (``self.args`` keeps them alive)
        self.raw = [a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args]
        self.slots = tuple(i for i, a in enumerate(args) if isinstance(a, Slot))
        self.take = tuple(a.index for a in args if isinstance(a, Slot))  # the call's tensors, slot by slot
        self.kwargs = kwargs
        # Triton's interpreter is decided once (its kernels were loaded for it or not); the
        # switch of direct launches is read per call (benchmarks time both ways)
        self.direct = fast_enabled()
        self.hits: dict[tuple[Any, ...], _Compiled | None] = {}

    def __call__(self, tensors: Sequence[torch.Tensor]) -> None:
        used = [tensors[j] for j in self.take]
        if not (self.direct and _ENABLED):
            self.launcher.fn[self.grid](*self._with(used), **self.kwargs)
            return
        device = torch.cuda.current_device()
        ptrs = [t.data_ptr() for t in used]
        key = (device, *[t.dtype for t in used], *[p & 15 for p in ptrs])
        hit = self.hits.get(key, _MISS)
        if hit is _MISS:  # keyed in full by the launcher, compiled or found
            if len(self.hits) >= MAX_KEYS:
                self.hits.clear()
            self.hits[key] = self.launcher.call(self.grid, self._with(used), self.kwargs)
        elif hit is None:
            self.launcher.fn[self.grid](*self._with(used), **self.kwargs)
        else:
            hooks = _hooks()
            if hooks[0] is None:  # addresses only
                raw = self.raw.copy()
                for i, p in zip(self.slots, ptrs):
                    raw[i] = p
                _launch_with(hit, self.grid, device, raw, hooks)  # type: ignore[arg-type]
            else:  # a profiler's hook sees the tensors, as with Triton's own launches
                _launch_with(hit, self.grid, device, self._with(used), hooks)  # type: ignore[arg-type]

    def _with(self, used: Sequence[torch.Tensor]) -> list[Any]:
        """The arguments with this call's tensors in the slots."""
        args = self.args.copy()
        for i, t in zip(self.slots, used):
            args[i] = t
        return args


MAX_SITES = 64  # prepared launches kept per cache (call layouts: strides, scales, batch sizes)
_T = TypeVar("_T")


def cached_site(cache: dict[Any, _T], key: Any, build: Callable[[], _T]) -> _T:
    """``cache[key]``, built by ``build()`` on a miss: a call layout's prepared launches. The
    cache starts over past ``MAX_SITES`` layouts rather than grow with every shape seen."""
    hit = cache.get(key)
    if hit is None:
        if len(cache) >= MAX_SITES:
            cache.clear()
        hit = cache[key] = build()
    return hit


_STREAM: list[Callable[[int], int]] = []  # Triton's current-stream getter, found on first use
_KNOBS: list[Any] = []  # Triton's runtime knobs (None on a Triton without them), found on first use


def _stream(device: int) -> int:
    if not _STREAM:
        from triton.runtime import driver

        _STREAM.append(driver.active.get_current_stream)
    return int(_STREAM[0](device))


def _hooks() -> tuple[Callable[..., Any] | None, Callable[..., Any] | None]:
    """Triton's launch hooks (profilers such as proton install them), None where none is set:
    then the launcher neither builds launch metadata nor calls back into Python. Read on every
    launch (a profiler may install them at any time); the module holding them is found once."""
    if not _KNOBS:
        try:
            from triton import knobs

            _KNOBS.append(knobs.runtime)
        except (ImportError, AttributeError):  # an older Triton: hooks on CompiledKernel
            _KNOBS.append(None)
    runtime = _KNOBS[0]
    if runtime is not None:
        enter = getattr(runtime, "launch_enter_hook", None)
        leave = getattr(runtime, "launch_exit_hook", None)
    else:
        from triton.compiler import CompiledKernel

        enter = getattr(CompiledKernel, "launch_enter_hook", None)
        leave = getattr(CompiledKernel, "launch_exit_hook", None)
    # Triton 3.6 keeps them as (usually empty) HookChain objects
    return (None if not getattr(enter, "calls", True) else enter,
            None if not getattr(leave, "calls", True) else leave)


def fast_enabled() -> bool:
    """Direct launches: on unless ``PATTERNC_FAST_LAUNCH=0`` or on Triton's interpreter."""
    return _ENABLED and os.environ.get("TRITON_INTERPRET", "0") in ("", "0")


_LAUNCHERS: dict[int, tuple[Any, Launcher]] = {}


def launcher(fn: Any) -> Launcher:
    """The :class:`Launcher` of ``fn`` (one per function object, kept for the process)."""
    hit = _LAUNCHERS.get(id(fn))
    if hit is None or hit[0] is not fn:
        hit = _LAUNCHERS[id(fn)] = (fn, Launcher(fn))
    return hit[1]


def name_of(fn: Any) -> str:
    """The name of a ``@triton.jit`` function (or of a stand-in with ``__name__``)."""
    return str(getattr(fn, "__name__", None) or getattr(getattr(fn, "fn", None), "__name__", ""))


def compiled_kernels() -> list[tuple[str, Any]]:
    """(function name, Triton ``CompiledKernel``) of every kernel this process has launched
    directly: their registers, spills, shared memory and launch options (``metadata.maxnreg``)."""
    return [(name_of(fn), hit.kernel) for fn, lau in _LAUNCHERS.values() for hit in lau.hits.values()
            if hit is not None]


def launch(fn: Any, grid: tuple[int, ...], *args: Any, **kwargs: Any) -> None:
    """``fn[grid](*args, **kwargs)``, directly after the first call of each specialization."""
    launcher(fn)(grid, *args, **kwargs)
