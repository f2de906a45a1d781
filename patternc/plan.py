"""The Plan: what a block-sparse kernel needs to know about a pattern at given lengths.

``patternc.lower.lower(pattern, nq, nk, block_q, block_k, heads)`` builds it analytically;
kernels consume it. The tables use FlexAttention's BCSR layout (``kv_num_blocks`` /
``kv_indices`` / ``full_kv_num_blocks`` / ``full_kv_indices``), with a leading *head group*
axis: ``G = ir.head_counts(pattern)`` distinct head patterns (1 unless the pattern uses
``heads(...)``), and head ``h`` of ``H`` uses group ``h * G // H``.

Block ``(qb, kb)`` covers queries ``[qb*block_q, min((qb+1)*block_q, nq))`` and keys
``[kb*block_k, min((kb+1)*block_k, nk))``. A block is
  * EMPTY   - no pair of the pattern inside; listed nowhere, never visited;
  * FULL    - every in-range pair is in the pattern; the kernel skips the predicate;
  * PARTIAL - mixed; the kernel evaluates the pattern's predicate.

Index rows are sorted ascending and padded with 0 past their count.

The lists are *stored* as arithmetic runs (:class:`Runs`: a causal row is one run, a strided
row one run with a step), which costs the pattern's structure, not its block count: a causal
mask over a million tokens is 16,383 runs where its index lists are 33 million entries. The
padded index tensors (``idx`` / ``full_idx``) are expanded from the runs on first access, on
the plan's device: move the plan with ``.to(device)`` first, which packs all four tables' runs
into one :class:`Expansion` program and moves it with the counts (the runs stay on the host); on
a GPU the expansion is then one fill and one kernel launch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class Runs:
    """Block indices as arithmetic runs, all 1-D int64 tensors of one length: row
    ``(g[i], row[i])`` holds ``start[i] + step[i] * t`` at positions ``pos[i] + t`` for
    ``t < count[i]``. Runs of one row cover positions ``0 .. num - 1`` without overlap.
    Build them with :meth:`of` (which counts ``total`` and ``width`` on the host).
    ``sort_rows``: the runs give each row's blocks in another order (a row listed residue class
    by residue class); :meth:`expand` sorts the rows ascending."""

    g: torch.Tensor
    row: torch.Tensor
    pos: torch.Tensor
    start: torch.Tensor
    count: torch.Tensor
    step: torch.Tensor
    total: int  # entries in all (``count.sum()``), known on the host: expansion needs no sync
    width: int  # entries in the longest row (``num.max()``)
    sort_rows: bool = False

    @staticmethod
    def of(cols: Sequence[torch.Tensor], sort_rows: bool = False) -> Runs:
        """Runs from host tensors ``(g, row, pos, start, count, step)``."""
        g, row, pos, start, count, step = cols
        total = int(count.sum()) if count.numel() else 0
        width = int((pos + count).max()) if count.numel() else 0
        return Runs(g, row, pos, start, count, step, total, width, sort_rows)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.g, self.row, self.pos, self.start, self.count, self.step

    def bases(self, groups: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Per head group, whether every row lists consecutive blocks (entry ``t`` is
        ``base + t``), and the rows' ``base`` (``[groups, rows]`` int32; 0 for empty rows). Runs
        of step 1 (or length 1) with one ``start - pos`` per row qualify; kernels then compute
        the blocks instead of loading them.

            >>> r = Runs.of([torch.tensor(x) for x in ([0, 0, 0], [0, 0, 1], [0, 2, 0],
            ...                                        [4, 6, 9], [2, 1, 3], [1, 1, 5])])
            >>> ok, base = r.bases(1, 2)
            >>> ok.tolist(), base.tolist()
            ([False], [[4, 9]])
        """
        g, row, pos, start, count, step = (t.cpu().numpy().astype(np.int64) for t in self.tensors())
        key = g * rows + row
        d = start - pos
        lo = np.full(groups * rows, np.iinfo(np.int64).max)
        hi = np.full(groups * rows, np.iinfo(np.int64).min)
        np.minimum.at(lo, key, d)
        np.maximum.at(hi, key, d)
        bad = np.zeros(groups * rows, dtype=bool)
        bad[key[(step != 1) & (count > 1)]] = True
        bad |= (lo != hi) & (lo <= hi)  # rows with runs of different offsets
        ok = np.logical_and(~bad.reshape(groups, rows).any(axis=1), not self.sort_rows)
        return np.asarray(ok), np.where(lo <= hi, lo, 0).astype(np.int32).reshape(groups, rows)

    def expand(self, num: torch.Tensor) -> torch.Tensor:
        """The padded ``[G, R, width]`` int32 index tensor (zeros past each row's ``num``)."""
        return Expansion.of([(self, num)]).tables[0]

    @staticmethod
    def from_lists(num: torch.Tensor, idx: torch.Tensor) -> Runs:
        """One run of length 1 per listed entry of padded ``[G, R, width]`` lists."""
        ok = torch.arange(idx.shape[2], device=idx.device)[None, None, :] < num[:, :, None]
        g, r, p = ok.nonzero(as_tuple=True)
        one = torch.ones_like(g)
        return Runs.of([g, r, p, idx[g, r, p].long(), one, one])


ALIGN = 32  # entries: each expanded table starts 128 bytes into the shared buffer


@dataclass(frozen=True, eq=False)
class Expansion:
    """Several tables' runs packed into one *program* that expands them all at once, into one
    buffer whose slices are the padded index tensors.

    ``prog`` is int64 ``[4, runs]``: per run the flat place of its first entry in the buffer, its
    start, count and step. It is packed on the host (:meth:`of`) and moved with the tables, so on a
    GPU the expansion is a fill and one kernel launch (:mod:`patternc.runtime.expand`); each torch
    op there costs a launch, 10-40 us of host time, and a by-op expansion took ~60 of them.

        >>> r = Runs.of([torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([0, 0]),
        ...              torch.tensor([5, 2]), torch.tensor([3, 1]), torch.tensor([-2, 1])])
        >>> Expansion.of([(r, torch.tensor([[3, 1]]))]).tables[0].tolist()
        [[[5, 3, 1], [2, 0, 0]]]
    """

    prog: torch.Tensor
    total: int  # entries written
    shapes: tuple[tuple[int, int, int], ...]  # per table [G, rows, width]
    begins: tuple[int, ...]  # per table its first entry in the buffer (ALIGN-aligned)
    size: int  # entries in the buffer
    nums: tuple[torch.Tensor, ...]  # per table its counts (to sort rows listed out of order)
    sort_rows: tuple[bool, ...]

    @staticmethod
    def of(items: Sequence[tuple[Runs, torch.Tensor]]) -> Expansion:
        """The program of ``[(runs, num), ...]``, computed where the runs are (numpy on the CPU:
        torch's CPU kernels go multi-threaded and stall on arrays this small)."""
        shapes = tuple((int(num.shape[0]), int(num.shape[1]), runs.width) for runs, num in items)
        sizes = [-(-G * R * W // ALIGN) * ALIGN for G, R, W in shapes]  # aligned starts: kernels'
        begins = tuple(sum(sizes[:i]) for i in range(len(items)))  # pointers keep Triton's 16-byte class
        cols = []
        for (runs, _), (_, R, W), begin in zip(items, shapes, begins):
            if runs.g.device.type == "cpu":
                g, row, pos = (t.numpy() for t in (runs.g, runs.row, runs.pos))
                base = torch.from_numpy((g * R + row) * W + pos + begin)
            else:
                base = (runs.g * R + runs.row) * W + runs.pos + begin
            cols.append(torch.stack([base, runs.start, runs.count, runs.step]))
        prog = torch.cat(cols, 1) if len(cols) > 1 else cols[0]
        return Expansion(prog, sum(r.total for r, _ in items), shapes, begins, sum(sizes),
                         tuple(num for _, num in items), tuple(r.sort_rows for r, _ in items))

    @cached_property
    def tables(self) -> tuple[torch.Tensor, ...]:
        """The padded int32 index tensors, in the order of :meth:`of`'s items (views of one buffer)."""
        dev = self.prog.device
        flat = torch.zeros(self.size, dtype=torch.int32, device=dev)
        if self.total and dev.type == "cuda":
            from patternc.runtime.expand import expand_runs

            expand_runs(flat, self.prog)
        elif self.total:
            _expand_on_host(flat, self.prog, self.total)
        out = []
        for (G, R, W), begin, num, sort in zip(self.shapes, self.begins, self.nums, self.sort_rows):
            idx = flat[begin:begin + G * R * W].view(G, R, W)
            if sort and G * R * W:  # rows listed residue class by residue class: sort them
                pad = torch.arange(W, device=dev)[None, None, :] >= num.to(dev)[:, :, None]
                top = torch.iinfo(torch.int32).max
                idx = idx.masked_fill(pad, top).sort(dim=2).values.masked_fill(pad, 0)
            out.append(idx)
        return tuple(out)


def _expand_on_host(flat: torch.Tensor, prog: torch.Tensor, total: int) -> None:
    """Write the program's entries into ``flat`` with numpy (copied over where ``flat`` is not on
    the CPU: devices without the expansion kernel)."""
    base, start, count, step = prog.cpu().numpy()
    run = np.repeat(np.arange(count.size), count)
    t = np.arange(total) - (np.cumsum(count) - count)[run]
    host = flat.numpy() if flat.device.type == "cpu" else np.zeros(flat.numel(), dtype=np.int32)
    host[base[run] + t] = start[run] + step[run] * t
    if flat.device.type != "cpu":
        flat.copy_(torch.from_numpy(host))


def on_device(t: torch.Tensor, device: torch.device | str) -> bool:
    """``t`` lives on ``device`` (``"cuda"`` matches the current CUDA device)."""
    d = torch.device(device)
    if d.type != t.device.type:
        return False
    if d.type == "cuda" and d.index is None:
        return t.device.index == torch.cuda.current_device()
    return d.index is None or d.index == t.device.index


@dataclass(frozen=True, eq=False)
class BlockTables:
    """One direction of the block lists.

    ``num[g, r]`` PARTIAL blocks (int32 ``[G, rows]``) whose indices ``idx[g, r, :num[g, r]]``
    come from ``runs``; ``full_num`` / ``full_idx`` / ``full_runs`` the same for FULL blocks.
    Forward rows are query blocks listing key blocks; the transposed tables (backward dK/dV) have
    key-block rows listing query blocks. ``expansion``: where moved tables get their index tensors
    (one program shared by both directions of a moved :class:`Plan`, ``slot`` 0 or 1 in it); moved
    tables keep their runs on the host.

        >>> t = BlockTables.from_lists(torch.tensor([[1, 2]]), torch.tensor([[[3, 0], [0, 1]]]),
        ...                            torch.tensor([[0, 0]]), torch.zeros(1, 2, 0, dtype=torch.int32))
        >>> t.idx.tolist(), int(t.runs.count.sum())
        ([[[3, 0], [0, 1]]], 3)
    """

    num: torch.Tensor
    runs: Runs
    full_num: torch.Tensor
    full_runs: Runs
    expansion: Expansion | None = None
    slot: int = 0

    @staticmethod
    def from_lists(num: torch.Tensor, idx: torch.Tensor, full_num: torch.Tensor,
                   full_idx: torch.Tensor) -> BlockTables:
        """Tables given as padded index lists (tests, hand-written tables)."""
        return BlockTables(num.int(), Runs.from_lists(num, idx), full_num.int(),
                           Runs.from_lists(full_num, full_idx))

    @property
    def has_partial(self) -> bool:
        """Whether any row lists a PARTIAL block (known on the host: no sync)."""
        return self.runs.total > 0

    @property
    def has_full(self) -> bool:
        """Whether any row lists a FULL block."""
        return self.full_runs.total > 0

    def items(self) -> list[tuple[Runs, torch.Tensor]]:
        """PARTIAL then FULL, as :meth:`Expansion.of` takes them."""
        return [(self.runs, self.num), (self.full_runs, self.full_num)]

    @cached_property
    def _expanded(self) -> tuple[torch.Tensor, ...]:
        # PARTIAL and FULL in one expansion: the kernels read both
        if self.expansion is not None:
            return self.expansion.tables[2 * self.slot:2 * self.slot + 2]
        return Expansion.of(self.items()).tables

    @property
    def idx(self) -> torch.Tensor:
        """PARTIAL block indices, int32 ``[G, rows, max num]``, expanded from ``runs`` on the tables'
        device."""
        return self._expanded[0]

    @property
    def full_idx(self) -> torch.Tensor:
        """FULL block indices, int32 ``[G, rows, max full_num]``."""
        return self._expanded[1]

    def to(self, device: torch.device | str) -> BlockTables:
        """These tables on ``device``: ``self`` if they are there already (keeping the expanded
        index tensors), else their counts and expansion program moved there (the index tensors
        are expanded there on first access)."""
        if on_device(self.num, device):
            return self
        return _moved([self], device)[0]


def _moved(tables: Sequence[BlockTables], device: torch.device | str) -> list[BlockTables]:
    """``tables`` with their counts and one expansion program for all of them on ``device``, in one
    copy. The runs stay where they are (the host): nothing on the device reads them, and moving
    their 24 small tensors cost more host time than the rest of the copy."""
    exp = Expansion.of([pair for t in tables for pair in t.items()])
    ts = move([n for t in tables for n in (t.num, t.full_num)] + [exp.prog], device)
    exp = replace(exp, prog=ts[-1], nums=tuple(ts[:-1]))
    return [replace(t, num=ts[2 * i], full_num=ts[2 * i + 1], expansion=exp, slot=i)
            for i, t in enumerate(tables)]


def move(tensors: Sequence[torch.Tensor], device: torch.device | str) -> list[torch.Tensor]:
    """Tensors on ``device`` in one host-to-device copy of their bytes (many small copies cost
    more); the results are views of that copy, so the device runs no conversion op."""
    offs, nbytes = [], 0
    for t in tensors:
        offs.append(nbytes)
        nbytes += -(-t.numel() * t.element_size() // 16) * 16  # 16-byte aligned views
    buf = np.empty(nbytes, dtype=np.uint8)
    for t, o in zip(tensors, offs):
        b = np.ascontiguousarray(t.detach().cpu().numpy()).reshape(-1).view(np.uint8)
        buf[o:o + b.size] = b
    flat = torch.from_numpy(buf).to(device)
    return [flat[o:o + t.numel() * t.element_size()].view(t.dtype).view(t.shape) if t.numel() else
            torch.empty(t.shape, dtype=t.dtype, device=flat.device) for t, o in zip(tensors, offs)]


@dataclass(frozen=True)
class Plan:
    """A pattern lowered at ``(nq, nk, block_q, block_k)``.

    ``forward``: rows are query blocks (``ceil(nq / block_q)``), entries key blocks.
    ``backward``: the exact transpose, rows are key blocks, entries query blocks.
    ``groups``: head-group count ``G``; ``heads`` the head count it was built for (or None).
    ``strategies``: how each part executes (heavy rows, residue classes, disjoint union branches);
    filled by the lowering and consumed by the kernels (see patternc.lower for the kinds).
    ``stats``: block density, heaviest row / column, ... for reports.
    """

    nq: int
    nk: int
    block_q: int
    block_k: int
    groups: int
    forward: BlockTables
    backward: BlockTables
    strategies: Sequence[Any] = ()  # patternc.lower builds its branches lazily, on first access
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def num_q_blocks(self) -> int:
        return -(-self.nq // self.block_q)

    @property
    def num_k_blocks(self) -> int:
        return -(-self.nk // self.block_k)

    def expanded(self) -> Plan:
        """``self`` with both directions' index tensors expanded now (on the plan's device), not
        on the kernels' first access."""
        self.forward.idx, self.backward.idx  # noqa: B018 - a moved plan expands all four at once
        return self

    def to(self, device: torch.device | str) -> Plan:
        if on_device(self.forward.num, device) and on_device(self.backward.num, device):
            return self
        f, b = self.forward, self.backward
        if all(x is y for pf, pb in zip(f.items(), b.items()) for x, y in zip(pf, pb)):  # symmetric
            # (the lowering reused the forward tables as the transposed ones): one set to move
            fwd = _moved([f], device)[0]
            return replace(self, forward=fwd, backward=replace(fwd))
        fwd, bwd = _moved([f, b], device)
        return replace(self, forward=fwd, backward=bwd)
