"""Summary gather: the Sparse Transformer ``fixed`` family with its summary keys made dense.

``fixed(l, c)`` holds the last ``c`` keys of every block of ``l`` (``j % l >= l - c``): 8 of 256 at
the usual sizes, so even 16-key tiles over them are half empty. The summary keys ``S`` (sorted,
``S[t] // l == t // c``) gathered into a compact K / V turn that part into dense tiles. Disjoint
decomposition, per head group (query at physical position ``x``):

* ``fixed(l, c) & causal`` = ``blocks(l) & causal`` (the rest: the summary keys of the query's own
  block are in it) plus the summary keys of the earlier blocks, ``{S[t] : t // c < x // l}``;
* ``(fixed(l, c) - blocks(l)) & causal`` = rest ``empty`` plus the same;
* ``heads(...) & causal`` over parts ``blocks(l)``, ``fixed(l, c)``, ``fixed(l, c) - blocks(l)``:
  one ``heads`` for the rest and one for the summary part, each over every head (an ``empty``
  head group costs nothing).

The summary part runs as ``$steps(l, c, nk - nks)`` (:class:`patternc.ir.Steps`) over the compact
keys, as one more launch of the plan (``patternc.runtime.forward`` / ``backward``): its forward
merges into the rest's ``(out, lse)`` in the kernel epilogue, its backward adds dQ in the kernel
and dK / dV through ``index_add_``. :func:`choose` decides per call (``$PATTERNC_SUMMARY``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from patternc import ir
from patternc.runtime.cache import env_choice

MIN_BLOCKS = 2
"""Only key lengths of at least this many blocks of ``l`` take the summary path: below, the
summary part holds at most one block's keys and an extra launch and merge cannot pay."""

MODES = ("auto", "force", "off")
MIN_PAIRS = 1 << 23
"""``auto`` gathers when the summary part holds at least this many (query, summary key) pairs.
H100, bf16, 16 heads (benchmarks/RESULTS.md, session 6): at 4k tokens (4096 x 512 pairs) the
gathers and extra launches cost more host time than the dense tiles save; at 16k (16384 x 1024)
forward and backward run 1.4-2.5x faster than plain blocks."""

_MODE: str | None = None  # None: follow $PATTERNC_SUMMARY


def mode() -> str:
    """``auto`` / ``force`` / ``off``: :func:`set_mode`'s, else ``$PATTERNC_SUMMARY``, else ``auto``."""
    if _MODE is not None:
        return _MODE
    return env_choice("PATTERNC_SUMMARY", MODES)


def set_mode(value: str | None) -> None:
    """Set the mode for this process (None: follow ``$PATTERNC_SUMMARY`` again)."""
    global _MODE
    if value is not None and value not in MODES:
        raise ValueError(f"summary mode must be one of {', '.join(MODES)}, got {value!r}")
    _MODE = value


def choose(node: ir.Node, nq: int, nk: int) -> Summary | None:
    """The decomposition to run ``node`` with at these lengths under the current mode, or None."""
    how = mode()
    if how == "off":
        return None
    dec = decompose(node, nq, nk)
    return dec if dec is not None and (how == "force" or nq * dec.nks >= MIN_PAIRS) else None


@dataclass(frozen=True)
class Summary:
    """How one call runs: ``rest`` on the physical keys (``empty``: skipped), ``steps`` on the
    ``nks`` summary keys of ``fixed(l, c)`` at key length ``nk``."""

    l: int
    c: int
    nk: int
    rest: ir.Node
    steps: ir.Node

    @property
    def nks(self) -> int:
        """Summary keys below ``nk``: ``c`` per complete block and the tail's last ones."""
        return summary_count(self.nk, self.l, self.c)

    def index(self, device: torch.device | str) -> torch.Tensor:
        """int64 ``[nks]``: the physical key of compact key ``t``, ascending."""
        return key_index(self.l, self.c, self.nk, str(device))

    @property
    def single(self) -> ir.Steps:
        """The summary part of one head group that has one (its tile choice stands for all)."""
        parts = self.steps.parts if isinstance(self.steps, ir.Heads) else (self.steps,)
        return next(p for p in parts if isinstance(p, ir.Steps))


def summary_count(nk: int, l: int, c: int) -> int:
    """Keys ``j < nk`` with ``j % l >= l - c``."""
    return nk // l * c + max(0, nk % l - (l - c))


def _part(node: ir.Node, lc: set[tuple[int, int]], ls: set[int]) -> tuple[ir.Node, bool] | None:
    """One head group's operand of ``& causal`` -> (its rest, whether it has a summary part), for
    ``blocks(l)``, ``fixed(l, c)``, ``fixed(l, c) - blocks(l)`` and ``empty``; None for anything
    else. Records the ``(l, c)`` and ``l`` it uses in ``lc`` / ``ls``."""
    match node:
        case ir.Empty():
            return ir.Empty(), False
        case ir.Blocks(b):
            ls.add(int(b))
            return ir.Intersect((node, ir.Causal())), False
        case ir.Fixed(l, c):
            lc.add((int(l), int(c)))
            return ir.Intersect((ir.Blocks(l), ir.Causal())), True
        case ir.Diff(ir.Fixed(l, c), ir.Blocks(b)) if b == l:
            lc.add((int(l), int(c)))
            return ir.Empty(), True
    return None


def _shape(node: ir.Node) -> tuple[ir.Node, tuple[bool, ...] | bool, int, int] | None:
    """``(rest, which head groups have a summary part, l, c)`` of a concrete pattern of the
    recognized shapes (a tuple per ``heads`` part, a bool without ``heads``), else None."""
    if not (isinstance(node, ir.Intersect) and len(node.parts) == 2):
        return None
    a, b = node.parts
    inner = b if isinstance(a, ir.Causal) else a if isinstance(b, ir.Causal) else None
    if inner is None:
        return None
    lc: set[tuple[int, int]] = set()
    ls: set[int] = set()
    heads = isinstance(inner, ir.Heads)
    found = [_part(p, lc, ls) for p in (inner.parts if isinstance(inner, ir.Heads) else (inner,))]
    parts = [p for p in found if p is not None]
    if len(parts) < len(found) or len(lc) != 1:
        return None
    (l, c), = lc
    if not ls <= {l}:
        return None
    rests = tuple(r for r, _ in parts)
    has = tuple(s for _, s in parts)
    rest: ir.Node = ir.Empty()
    if not all(isinstance(r, ir.Empty) for r in rests):
        rest = ir.Heads(rests) if heads else rests[0]
    return rest, (has if heads else has[0]), l, c


@functools.lru_cache(maxsize=128)
def decompose(node: ir.Node, nq: int, nk: int) -> Summary | None:
    """The summary decomposition of ``node`` at these lengths (module docstring), or None: another
    shape, arguments out of range (the plain path reports them), ``nk < nq``, ``nq == 0``, or
    fewer than ``MIN_BLOCKS`` blocks of keys."""
    if nq == 0 or nk < nq:
        return None
    conc = ir.concretize(node, nk)
    if any(ir.argument_errors(s) for s in conc.walk()):
        return None
    shape = _shape(conc)
    if shape is None:
        return None
    rest, has, l, c = shape
    if nk < MIN_BLOCKS * l:
        return None
    steps = ir.Steps(l, c, nk - summary_count(nk, l, c))
    summ: ir.Node = steps
    if isinstance(has, tuple):
        summ = ir.Heads(tuple(steps if s else ir.Empty() for s in has))
    return Summary(l, c, nk, rest, summ)


@functools.lru_cache(maxsize=64)
def key_index(l: int, c: int, nk: int, device: str) -> torch.Tensor:
    """int64 ``[nks]`` on ``device``: the physical key of compact key ``t``, ascending (cached)."""
    t = torch.arange(summary_count(nk, l, c), device=device)
    return t // c * l + (l - c) + t % c


def gather(k: torch.Tensor, v: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The summary keys and values, compact ``[B, Hkv, nks, D]`` (a copy: ``nks`` is ``c / l`` of
    the keys, 1/32 at the usual sizes)."""
    return k.index_select(2, index), v.index_select(2, index)
