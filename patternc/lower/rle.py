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
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def stop(self) -> np.ndarray:
        """Exclusive end column of each run."""
        out = np.empty_like(self.start)
        if out.size:
            out[:-1] = self.start[1:]
            last = np.ones(out.size, dtype=bool)
            last[:-1] = self.row[1:] != self.row[:-1]
            out[last] = self.C
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
    return BlockRLE(R, C, row[keep], start[keep], state[keep])


def from_intervals(R: int, C: int, rows: np.ndarray, c0: np.ndarray, c1: np.ndarray,
                   states: np.ndarray | int, background: int = EMPTY) -> BlockRLE:
    """Paint the half-open column intervals ``[c0, c1)`` of ``rows`` (non-overlapping within a
    row, may be empty or out of order) over a ``background`` state."""
    rows, c0, c1 = (np.asarray(x, dtype=np.int64) for x in (rows, c0, c1))
    states = np.broadcast_to(np.asarray(states, dtype=np.uint8), rows.shape)
    c0, c1 = np.clip(c0, 0, C), np.clip(c1, 0, C)
    ok = c0 < c1
    rows, c0, c1, states = rows[ok], c0[ok], c1[ok], states[ok]
    ends = c1 < C
    all_rows = np.arange(R, dtype=np.int64)
    # priority decides which event wins at one (row, column): interval starts beat interval
    # ends and the row's background
    key = np.concatenate([all_rows * C, rows[ends] * C + c1[ends], rows * C + c0])
    prio = np.concatenate([np.zeros(R + int(ends.sum()), dtype=np.int64), np.ones(rows.size, dtype=np.int64)])
    st = np.concatenate([np.full(R + int(ends.sum()), background, dtype=np.uint8), states])
    # one integer key with the priority in the low bit; a stable sort is adaptive (runs already
    # in order, as most callers produce them, merge in linear time)
    order = np.argsort(key * 2 + prio, kind="stable")
    key, st = key[order], st[order]
    last = np.ones(key.size, dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    key, st = key[last], st[last]
    return coalesce(R, C, key // C, key % C, st)


def _union_keys(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sorted union of sorted keys ``a`` and ``b``, and for each union key the index of the
    last key of ``a`` (of ``b``) at or before it (-1: none)."""
    # a stable sort of two sorted runs is a linear-time merge; counting the keys taken from
    # each side so far gives the indices without a binary search per key
    k = np.concatenate([a, b])
    order = np.argsort(k, kind="stable")
    k = k[order]
    from_a = order < a.size
    ia = np.cumsum(from_a) - 1
    ib = np.arange(k.size) - ia - 1
    last = np.ones(k.size, dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    return k[last], ia[last], ib[last]


def merge(a: BlockRLE, b: BlockRLE, table: np.ndarray) -> BlockRLE:
    """Combine two matrices of the same shape cell by cell: ``table[state_a, state_b]``."""
    assert (a.R, a.C) == (b.R, b.C)
    if a.C == 0 or a.R == 0:
        return a
    if _go_dense(a.R * a.C, a.runs() + b.runs()):
        # runs almost as many as blocks (periodic patterns): a dense table lookup is cheaper
        return from_dense(table[to_dense(a), to_dense(b)])
    k, ia, ib = _union_keys(a.keys(), b.keys())
    sa, sb = a.state[ia], b.state[ib]  # every row starts a run at column 0: never -1
    return coalesce(a.R, a.C, k // a.C, k % a.C, table[sa, sb])


def map_states(a: BlockRLE, table: np.ndarray) -> BlockRLE:
    """Apply a state map to every run."""
    return coalesce(a.R, a.C, a.row, a.start, table[a.state])


def expand(a: BlockRLE, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, states)`` of every block in the runs selected by ``mask`` (all by default)."""
    row, start, stop, state = a.row, a.start, a.stop, a.state
    if mask is not None:
        row, start, stop, state = row[mask], start[mask], stop[mask], state[mask]
    n = stop - start
    total = int(n.sum())
    first = np.cumsum(n) - n
    cols = np.arange(total, dtype=np.int64) - np.repeat(first - start, n)
    return np.repeat(row, n), cols, np.repeat(state, n)


def paint_blocks(a: BlockRLE, keep: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 states: np.ndarray) -> BlockRLE:
    """The runs of ``a`` selected by ``keep`` (the others become EMPTY) with single blocks
    ``(rows, cols)`` painted in ``states`` (blocks lying outside the kept runs)."""
    if _go_dense(a.R * a.C, a.runs()):
        d = to_dense(BlockRLE(a.R, a.C, a.row, a.start, np.where(keep, a.state, EMPTY).astype(np.uint8)))
        d[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = states
        return from_dense(d)
    base = BlockRLE(a.R, a.C, a.row, a.start, np.where(keep, a.state, EMPTY).astype(np.uint8))
    return merge(base, single_blocks(a.R, a.C, rows, cols, states, 0), _OVERRIDE)


_OVERRIDE = np.array([[b if b else x for b in range(8)] for x in range(8)], dtype=np.uint8)
"""``_OVERRIDE[x, b]``: ``b`` where an override is given (``b != 0``), else the state ``x`` below."""


def single_blocks(R: int, C: int, rows: np.ndarray, cols: np.ndarray, states: np.ndarray,
                  background: int = EMPTY, ordered: bool = False) -> BlockRLE:
    """Distinct single blocks ``(rows, cols)`` in ``states`` over ``background`` elsewhere
    (``ordered``: already sorted by (row, column)); adjacent equal blocks are not merged."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    states = np.asarray(states, dtype=np.uint8)
    if not ordered:
        order = np.argsort(rows * C + cols, kind="stable")
        rows, cols, states = rows[order], cols[order], states[order]
    # after each block, back to "no override" unless the next block of the row follows it
    after = cols + 1 < C
    after[:-1] &= ~((rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1] + 1))
    r = np.concatenate([np.arange(R, dtype=np.int64), rows, rows[after]])
    c = np.concatenate([np.zeros(R, dtype=np.int64), cols, cols[after] + 1])
    k = int(after.sum())
    fill = np.full(R + k, background, dtype=np.uint8)
    st = np.concatenate([fill[:R], states, fill[R:]])
    # a block at column 0 replaces its row's start: sort blocks after starts, keep the last
    prio = np.concatenate([np.zeros(R, dtype=np.int64), np.ones(rows.size + k, dtype=np.int64)])
    order = np.argsort((r * C + c) * 2 + prio, kind="stable")
    r, c, st = r[order], c[order], st[order]
    last = np.ones(r.size, dtype=bool)
    last[:-1] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    return BlockRLE(R, C, r[last], c[last], st[last])


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


DENSE_CELLS = 1 << 22
"""Grids up to this many blocks are transposed as a dense matrix (a few bytes per block)."""
DENSE_MAX_CELLS = 1 << 26
"""Larger grids (up to a million tokens in blocks of 128) go dense only when their runs number
at least a sixteenth of their blocks: periodic patterns, whose run lists cost more than bytes."""


def _go_dense(cells: int, runs: int) -> bool:
    return cells <= DENSE_MAX_CELLS and runs * 16 > cells


def _nonempty(a: BlockRLE) -> int:
    return int((a.stop - a.start)[a.state != EMPTY].sum())


def _by_column(cols: np.ndarray, C: int) -> np.ndarray:
    """A stable order by ``cols`` (on 16-bit keys numpy's stable sort is a radix sort)."""
    return np.argsort(cols.astype(np.uint16) if C <= 1 << 16 else cols, kind="stable")


def _transpose_blocks(a: BlockRLE) -> BlockRLE:
    """The transpose from the non-empty blocks themselves (few, scattered)."""
    R, C = a.R, a.C
    rows, cols, states = expand(a, a.state != EMPTY)  # row-major
    order = _by_column(cols, C)
    tr, tc, ts = cols[order], rows[order], states[order]  # transposed rows, columns ascending in each
    n = tr.size
    first = np.ones(n, dtype=bool)
    first[1:] = tr[1:] != tr[:-1]
    follows = np.zeros(n, dtype=bool)  # block i continues block i - 1 of its row
    follows[1:] = ~first[1:] & (tc[1:] == tc[:-1] + 1)
    followed = np.append(follows[1:], False)
    same = np.zeros(n, dtype=bool)
    same[1:] = ts[1:] == ts[:-1]
    # per block, in order: an EMPTY run from column 0 (first block of its row, not at 0), its own
    # run (unless it extends the previous one), an EMPTY run after it (unless a block follows)
    slots = np.stack([first & (tc > 0), ~(follows & same), ~followed & (tc + 1 < R)], axis=1).reshape(-1)
    r = np.repeat(tr, 3)[slots]
    c = np.stack([np.zeros_like(tc), tc, tc + 1], axis=1).reshape(-1)[slots]
    st = np.stack([np.full(n, EMPTY, np.uint8), ts, np.full(n, EMPTY, np.uint8)], axis=1).reshape(-1)[slots]
    busy = np.zeros(C, dtype=bool)
    busy[tr] = True
    idle = np.flatnonzero(~busy)  # rows with no block
    r = np.concatenate([r, idle])
    c = np.concatenate([c, np.zeros(idle.size, dtype=np.int64)])
    st = np.concatenate([st, np.full(idle.size, EMPTY, np.uint8)])
    order = _by_column(r, C)
    return coalesce(C, R, r[order], c[order], st[order])


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
    nxt = a.row + 1
    inside = nxt < R
    prev = BlockRLE(R, C, np.concatenate([[0], nxt[inside]]), np.concatenate([[0], a.start[inside]]),
                    np.concatenate([[0], a.state[inside]]).astype(np.uint8))
    k, ip, ia = _union_keys(prev.keys(), a.keys())
    sp, sa = prev.state[ip], a.state[ia]
    row, start = k // C, k % C
    stop = np.empty_like(start)
    stop[:-1] = start[1:]
    last = np.ones(k.size, dtype=bool)
    last[:-1] = row[1:] != row[:-1]
    stop[last] = C
    ch = sp != sa
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
