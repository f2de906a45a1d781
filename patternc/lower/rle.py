"""Run-length encoded block matrices: the sparse form every lowering step works in.

A :class:`BlockRLE` describes an ``R x C`` matrix of block *states* row by row as runs: every
row starts a run at column 0, and a run lasts until the next run of its row (or column ``C``).
Runs are stored as three flat arrays sorted by ``(row, start)``. A band, a causal mask or a
global row costs a handful of runs per row, whatever the block size, so patterns over a
million tokens (8,192 block rows) stay in the tens of thousands of runs; nothing here ever
allocates ``R x C`` cells.

States are *possibility sets* over {EMPTY, PARTIAL, FULL} (bit flags): an exact state has one
bit, and an operator that cannot decide (the union of two PARTIAL blocks may be FULL) sets
several; :mod:`patternc.lower.combine` resolves those exactly afterwards.

Selections go through index arrays (``np.flatnonzero(mask)`` and plain takes): on the irregular
masks of run lists, numpy's boolean indexing, ``np.where`` and masked assignment cost several
times as much per element (they branch on every entry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

EMPTY, PARTIAL, FULL = 1, 2, 4
UNKNOWN = EMPTY | PARTIAL | FULL


def is_exact(states: np.ndarray) -> np.ndarray:
    """True where a possibility set has a single member."""
    return (states == EMPTY) | (states == PARTIAL) | (states == FULL)


@dataclass(frozen=True, eq=False)
class BlockRLE:
    """``R x C`` block states as runs: ``row[i]``, ``start[i]``, ``state[i]`` sorted by (row, start)."""

    R: int
    C: int
    row: np.ndarray  # int64
    start: np.ndarray  # int64
    state: np.ndarray  # uint8 possibility set

    @cached_property
    def stop(self) -> np.ndarray:
        """Exclusive end column of each run (computed once: tables and transposes read it often)."""
        out = np.empty_like(self.start)
        if out.size:
            out[:-1] = self.start[1:]
            out[np.flatnonzero(self.row[1:] != self.row[:-1])] = self.C
            out[-1] = self.C
        return out

    def keys(self) -> np.ndarray:
        return self.row * self.C + self.start

    def runs(self) -> int:
        return int(self.row.size)


def uniform(R: int, C: int, state: int) -> BlockRLE:
    """Every block in ``state``."""
    return BlockRLE(R, C, np.arange(R, dtype=np.int64), np.zeros(R, dtype=np.int64),
                    np.full(R, state, dtype=np.uint8))


def coalesce(R: int, C: int, row: np.ndarray, start: np.ndarray, state: np.ndarray) -> BlockRLE:
    """Runs sorted by (row, start) covering every row, with equal neighbours in a row merged."""
    keep = np.ones(row.size, dtype=bool)
    keep[1:] = (state[1:] != state[:-1]) | (row[1:] != row[:-1])
    i = np.flatnonzero(keep)
    return BlockRLE(R, C, row[i], start[i], state[i])


def from_intervals(R: int, C: int, rows: np.ndarray, c0: np.ndarray, c1: np.ndarray,
                   states: np.ndarray | int, background: int = EMPTY) -> BlockRLE:
    """Paint the half-open column intervals ``[c0, c1)`` of ``rows`` (non-overlapping within a
    row, may be empty or out of order) over a ``background`` state."""
    rows, c0, c1 = (np.asarray(x, dtype=np.int64) for x in (rows, c0, c1))
    states = np.broadcast_to(np.asarray(states, dtype=np.uint8), rows.shape)
    c0, c1 = np.clip(c0, 0, C), np.clip(c1, 0, C)
    ok = np.flatnonzero(c0 < c1)
    rows, c0, c1, states = rows[ok], c0[ok], c1[ok], states[ok]
    ends = np.flatnonzero(c1 < C)
    all_rows = np.arange(R, dtype=np.int64)
    # priority decides which event wins at one (row, column): interval starts beat interval
    # ends and the row's background; one integer key with the priority in the low bit
    w = 2 * C
    key = np.concatenate([all_rows * w, rows[ends] * w + 2 * c1[ends], rows * w + 2 * c0 + 1])
    st = np.concatenate([np.full(R + ends.size, background, dtype=np.uint8), states])
    # a stable sort is adaptive (runs already in order, as most callers produce them, merge in
    # linear time)
    order = np.argsort(key, kind="stable")
    key = key[order] >> 1
    last = np.ones(key.size, dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    i = np.flatnonzero(last)
    key, st = key[i], st[order[i]]
    row = key // C
    return coalesce(R, C, row, key - row * C, st)


def _union_keys(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sorted union of sorted keys ``a`` and ``b``, and for each union key the index of the
    last key of ``a`` (of ``b``) at or before it (-1: none)."""
    # a stable sort of two sorted runs is a linear-time merge; counting the keys taken from
    # each side so far gives the indices without a binary search per key
    k = np.concatenate([a, b])
    order = np.argsort(k, kind="stable")
    k = k[order]
    from_a = (order < a.size).astype(np.int64)  # a cumulative sum of bools is several times slower
    ia = np.cumsum(from_a) - 1
    last = np.ones(k.size, dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    i = np.flatnonzero(last)
    ia = ia[i]
    return k[i], ia, i - ia - 1


def merge(a: BlockRLE, b: BlockRLE, table: np.ndarray) -> BlockRLE:
    """Combine two matrices of the same shape cell by cell: ``table[state_a, state_b]``."""
    assert (a.R, a.C) == (b.R, b.C)
    if a.C == 0 or a.R == 0:
        return a
    if _go_dense(a.R * a.C, a.runs() + b.runs()):
        # runs almost as many as blocks (periodic patterns): a dense table lookup is cheaper
        return from_dense(table[to_dense(a), to_dense(b)])
    k, ia, ib = _union_keys(a.keys(), b.keys())
    # every row starts a run at column 0: never -1; states < 8, one flat lookup
    st = table.reshape(-1)[(a.state[ia] << 3) | b.state[ib]]
    row = k // a.C
    return coalesce(a.R, a.C, row, k - row * a.C, st)


def map_states(a: BlockRLE, table: np.ndarray) -> BlockRLE:
    """Apply a state map to every run."""
    return coalesce(a.R, a.C, a.row, a.start, table[a.state])


def expand(a: BlockRLE, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, states)`` of every block in the runs selected by ``mask`` (all by default)."""
    row, start, stop, state = a.row, a.start, a.stop, a.state
    if mask is not None:
        i = np.flatnonzero(mask)
        row, start, stop, state = row[i], start[i], stop[i], state[i]
    n = stop - start
    total = int(n.sum())
    first = np.cumsum(n) - n
    cols = np.arange(total, dtype=np.int64)
    cols -= np.repeat(first - start, n)
    return np.repeat(row, n), cols, np.repeat(state, n)


def split_runs(a: BlockRLE, mask: np.ndarray,
               states_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> BlockRLE:
    """``a`` with every block of the runs selected by ``mask`` restated one by one as
    ``states_of(rows, cols)`` (blocks in row-major order, as :func:`expand` lists them).

    The other runs stay whole: each run becomes itself or its blocks, in place, so the result
    is in order without a sort or a merge. When few runs are selected, only their rows are
    rebuilt and spliced back in (a few passes over the rest, not a rebuild)."""
    which = np.flatnonzero(mask)
    if which.size * SPLICE_RATIO > a.runs():
        return _split_all(a, mask, states_of)
    rows = np.unique(a.row[which])
    lo, hi = np.searchsorted(a.row, rows), np.searchsorted(a.row, rows, side="right")
    n = hi - lo
    before = np.cumsum(n) - n  # runs of the rebuilt rows before each of them
    sel = np.repeat(lo - before, n) + np.arange(int(n.sum()), dtype=np.int64)
    new = _split_all(BlockRLE(a.R, a.C, a.row[sel], a.start[sel], a.state[sel]), mask[sel], states_of)
    if rows.size <= SPLICE_SLICES:
        # a few rows: join slices (np.insert / np.delete cost several passes over every run)
        nlo, nhi = np.searchsorted(new.row, rows), np.searchsorted(new.row, rows, side="right")
        cuts = np.stack([np.append(0, hi), np.append(lo, a.runs())], axis=1).tolist()
        made = np.stack([nlo, nhi], axis=1).tolist()

        def joined(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            pieces = [x[cuts[0][0]:cuts[0][1]]]
            for (u, v), (p, q) in zip(made, cuts[1:]):
                pieces += [y[u:v], x[p:q]]
            return np.concatenate(pieces)

        return BlockRLE(a.R, a.C, joined(a.row, new.row), joined(a.start, new.start),
                        joined(a.state, new.state))
    at = (lo - before)[np.searchsorted(rows, new.row)]  # where the row sits among the kept runs
    row, start, state = (np.insert(np.delete(x, sel), at, y) for x, y in
                         ((a.row, new.row), (a.start, new.start), (a.state, new.state)))
    return BlockRLE(a.R, a.C, row, start, state)


SPLICE_RATIO = 16
""":func:`split_runs` rebuilds only the affected rows when at most one run in this many is split."""
SPLICE_SLICES = 64
""":func:`split_runs` joins slices when at most this many rows are rebuilt."""


def _split_all(a: BlockRLE, mask: np.ndarray,
               states_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> BlockRLE:
    n = 1 + (a.stop - a.start - 1) * mask
    total = int(n.sum())
    run = np.repeat(np.arange(n.size, dtype=np.int64), n)
    first = np.cumsum(n) - n
    col = a.start[run] + (np.arange(total, dtype=np.int64) - first[run])
    row, st = a.row[run], a.state[run]
    sel = np.flatnonzero(mask[run])
    st[sel] = states_of(row[sel], col[sel])
    return coalesce(a.R, a.C, row, col, st)


def single_blocks(R: int, C: int, rows: np.ndarray, cols: np.ndarray, states: np.ndarray,
                  background: int = EMPTY, ordered: bool = False) -> BlockRLE:
    """Distinct single blocks ``(rows, cols)`` in ``states`` over ``background`` elsewhere
    (``ordered``: already sorted by (row, column)). Neighbouring blocks in one state form one
    run: with states other than ``background`` the runs come out coalesced."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    states = np.asarray(states, dtype=np.uint8)
    if not ordered:
        order = np.argsort(rows * C + cols, kind="stable")
        rows, cols, states = rows[order], cols[order], states[order]
    # slots, in order without a sort: per row its start (the background from column 0), then
    # per block of the row the block and the background after it
    n = rows.size
    per_row = np.bincount(rows, minlength=R)
    head = 2 * (np.cumsum(per_row) - per_row) + np.arange(R, dtype=np.int64)  # slot of each row's start
    # block k (the t-th of its row) sits at head[row] + 1 + 2 t = row + 1 + 2 k: no gathers
    slot = rows + 1 + 2 * np.arange(n, dtype=np.int64)
    keep = np.ones(R + 2 * n, dtype=bool)
    keep[head[rows[np.flatnonzero(cols == 0)]]] = False  # a block at column 0 replaces its row's start
    # after each block, back to the background unless the next block of the row follows it;
    # a block that follows one in its own state continues that one's run
    follows = (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1] + 1)
    after = cols + 1 < C
    after[:-1] &= ~follows
    keep[slot + 1] = after
    keep[slot[1:][follows & (states[1:] == states[:-1])]] = False
    del follows, after
    # the slot arrays are built after the selection and dropped one by one (fresh memory is
    # page-faulted: at 1M tokens the transpose's peak costs more than its passes); every row
    # keeps a slot (its start or its block at column 0), so the rows come from the kept counts
    i = np.flatnonzero(keep)
    r = np.repeat(np.arange(R, dtype=np.int64), np.add.reduceat(keep, head, dtype=np.int64))
    del keep
    c = np.zeros(R + 2 * n, dtype=np.int64)
    c[slot], c[slot + 1] = cols, cols + 1
    c = c[i]
    st = np.full(R + 2 * n, background, dtype=np.uint8)
    st[slot] = states
    return BlockRLE(R, C, r, c, st[i])


def from_dense(states: np.ndarray) -> BlockRLE:
    """Runs of a dense ``[R, C]`` state matrix."""
    R, C = states.shape
    flat = states.reshape(-1)
    keep = np.zeros(flat.size, dtype=bool)
    keep[::C] = True
    keep[1:] |= flat[1:] != flat[:-1]
    idx = np.flatnonzero(keep)
    return BlockRLE(R, C, idx // C, idx % C, flat[idx].astype(np.uint8))


def to_dense(a: BlockRLE) -> np.ndarray:
    """The ``[R, C]`` state matrix (for small grids only)."""
    return np.repeat(a.state, a.stop - a.start).reshape(a.R, a.C)


DENSE_CELLS = 1 << 16
"""Grids up to this many blocks are transposed as a dense matrix (a few bytes per block). Numpy
transposes bytes slowly out of cache: at 512 x 512 blocks (64k tokens) the dense transpose took
0.3-0.45 ms on the VM, the change-based one 0.09-0.34 ms on every stdlib pattern; at 256 x 256
they cost the same."""
DENSE_MAX_CELLS = 1 << 26
"""Larger grids (up to a million tokens in blocks of 128) go dense only when their runs number
at least a sixteenth of their blocks: periodic patterns, whose run lists cost more than bytes."""


def _go_dense(cells: int, runs: int) -> bool:
    return cells <= DENSE_MAX_CELLS and runs * 16 > cells


def _nonempty(a: BlockRLE) -> int:
    return int(((a.stop - a.start) * (a.state != EMPTY)).sum())


def _by_column(cols: np.ndarray, C: int) -> np.ndarray:
    """A stable order by ``cols`` (on 16-bit keys numpy's stable sort is a radix sort)."""
    return np.argsort(cols.astype(np.uint16) if C <= 1 << 16 else cols, kind="stable")


def _transpose_blocks(a: BlockRLE) -> BlockRLE:
    """The transpose from the non-empty blocks themselves (few, scattered)."""
    R, C = a.R, a.C
    rows, cols, states = expand(a, a.state != EMPTY)  # row-major
    order = _by_column(cols, C)  # transposed rows, columns ascending in each
    t_rows, t_cols, t_states = cols[order], rows[order], states[order]
    del rows, cols, states, order  # a lower peak: fresh memory costs page faults at 1M tokens
    return single_blocks(C, R, t_rows, t_cols, t_states, EMPTY, ordered=True)


def transpose(a: BlockRLE) -> BlockRLE:
    """The ``C x R`` transpose, computed from the changes between consecutive rows only."""
    R, C = a.R, a.C
    if R == 0 or C == 0:
        return uniform(C, R, EMPTY)
    if (R * C <= DENSE_CELLS and a.runs() * 8 > R) or _go_dense(R * C, a.runs()):
        return from_dense(np.ascontiguousarray(to_dense(a).T))
    if _nonempty(a) <= a.runs() + R:
        return _transpose_blocks(a)  # scattered blocks (random, global columns): sort them
    # row r of `prev` holds row r - 1 of `a`; row 0 holds a sentinel state 0 (no state), so
    # every column starts a run at row 0 of the transpose
    inside = np.flatnonzero(a.row + 1 < R)
    prev = BlockRLE(R, C, np.concatenate([[0], a.row[inside] + 1]), np.concatenate([[0], a.start[inside]]),
                    np.concatenate([[0], a.state[inside]]).astype(np.uint8))
    k, ip, ia = _union_keys(prev.keys(), a.keys())
    sp, sa = prev.state[ip], a.state[ia]
    row = k // C
    start = k - row * C
    stop = np.empty_like(start)
    stop[:-1] = start[1:]
    stop[np.flatnonzero(row[1:] != row[:-1])] = C
    stop[-1] = C
    ch = np.flatnonzero(sp != sa)
    row, start, stop, sa = row[ch], start[ch], stop[ch], sa[ch]
    n = stop - start
    if int(n.sum()) > 2 * _nonempty(a) + R:
        # consecutive rows differ almost everywhere (periodic patterns): sort the blocks instead
        rows, cols, states = expand(a, a.state != EMPTY)
        return from_intervals(C, R, cols, rows, rows + 1, states)
    first = np.cumsum(n) - n
    cols = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(first - start, n)
    t_rows, t_start, t_state = cols, np.repeat(row, n), np.repeat(sa, n)
    order = _by_column(t_rows, C)  # the changes come row by row: now by (column, row)
    return coalesce(C, R, t_rows[order], t_start[order], t_state[order])
