"""Tiles (query block x key block) touched by a pattern, from the row segments of the sweep."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from patternc import ir
from patternc.analysis.atoms import Iv, compile_pattern
from patternc.analysis.rows import (
    CELLS_PER_CHUNK,
    MAX_PERIODIC,
    ROWS_PER_CHUNK,
    RowCounts,
    Sweep,
    row_counts,
)


def merge_intervals(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals ``[lo, hi)`` as sorted disjoint intervals."""
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    if lo.size == 0:
        return lo, hi
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    first = np.ones(lo.size, dtype=bool)
    first[1:] = lo[1:] > reach[:-1]
    idx = np.flatnonzero(first)
    return lo[idx], np.maximum.reduceat(hi, idx)


def _tile_spans(a: np.ndarray, b: np.ndarray, counts: np.ndarray, size: int,
                nkb: int) -> tuple[np.ndarray, np.ndarray]:
    """Marked tiles of one chunk of rows that starts at a block boundary, as disjoint spans
    ``[lo, hi)`` on the line ``local query block * (nkb + 1) + key block`` (a tile is marked
    when a segment with keys overlaps it)."""
    width = nkb + 1
    r, s = np.nonzero(counts > 0)
    base = (r // size) * width  # row r of the chunk is in its local query block r // size
    return merge_intervals(base + a[r, s] // size, base + (b[r, s] - 1) // size + 1)


def _tile_marks(a: np.ndarray, b: np.ndarray, counts: np.ndarray, size: int, nkb: int) -> np.ndarray:
    """``[query blocks, key blocks]`` marks of one chunk of rows (see ``_tile_spans``)."""
    width = nkb + 1
    local = -(-a.shape[0] // size)
    lo, hi = _tile_spans(a, b, counts, size, nkb)
    marks = np.bincount(lo, minlength=local * width) - np.bincount(hi, minlength=local * width)
    return np.cumsum(marks.reshape(local, width), axis=1)[:, :nkb] > 0


def _block_rows(size: int, nk: int) -> int:
    # rows per chunk: whole query blocks, and at most ~4M tile marks at a time
    width = -(-nk // size) + 1
    return max(size, min(ROWS_PER_CHUNK, CELLS_PER_CHUNK * 2 // width * size) // size * size)


def tile_rows(node: ir.Node, nq: int, nk: int, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first query block, marks[query blocks, key blocks])`` by chunks of query blocks:
    exact (marked iff non-empty) for patterns without residue atoms, a superset otherwise.
    ``node`` must be concrete."""
    sweep = Sweep(node, nq, nk, 0, nk)
    step = _block_rows(size, nk)
    for i0 in range(0, nq, step):
        _, a, b, counts = sweep.segments(i0, min(nq, i0 + step))
        yield i0 // size, _tile_marks(a, b, counts, size, -(-nk // size))


def counts_and_blocks(node: ir.Node, nq: int, nk: int,
                      size: int) -> tuple[RowCounts, tuple[float, int] | None]:
    """``row_counts`` and, in the same sweep, the exact (block density, heaviest query-block row).

    Segments with every key mark the tiles they overlap. A segment with a residue pattern whose
    longest step between keys is at most ``size`` marks every tile it covers whole, and its two
    end tiles by an exact count. Block figures are None when a step is longer (or the pattern
    has too many residue atoms): the caller asks the lowering then."""
    node = ir.concretize(node, nk)
    ir.check_arguments(node)
    sweep = Sweep(node, nq, nk, 0, nk)
    if len(sweep.per) > MAX_PERIODIC:
        return row_counts(node, nq, nk), None
    nqb, nkb = -(-nq // size), -(-nk // size)
    out = np.zeros(nq, dtype=np.int64)
    visited, heaviest, blocks_ok = 0, 0, True
    gaps: dict[int, float] = {}
    step = max(size, ROWS_PER_CHUNK // size * size)
    for i0 in range(0, nq if nk else 0, step):
        i1 = min(nq, i0 + step)
        p, a, b, counts, code = sweep.coded_segments(i0, i1)
        out[i0:i1] = counts.sum(axis=1)
        if blocks_ok:
            spans = _coded_tile_spans(sweep, gaps, p, a, b, counts, code, size, nkb)
            if spans is None:
                blocks_ok = False
                continue
            lo, hi = spans
            per_row = np.bincount(lo // (nkb + 1), weights=hi - lo, minlength=-(-(i1 - i0) // size))
            visited += int(per_row.sum())
            heaviest = max(heaviest, int(per_row.max(initial=0)))
    rc = RowCounts(out, sweep.res.exact)
    if not blocks_ok:
        return rc, None
    return rc, (visited / (nqb * nkb) if nqb * nkb else 0.0, heaviest)


def _coded_tile_spans(sweep: Sweep, gaps: dict[int, float], p: np.ndarray, a: np.ndarray, b: np.ndarray,
                      counts: np.ndarray, code: np.ndarray, size: int,
                      nkb: int) -> tuple[np.ndarray, np.ndarray] | None:
    width = nkb + 1
    r, s = np.nonzero(counts > 0)
    base = (r // size) * width  # rows of a chunk start at a block boundary
    sa, sb, sc = a[r, s], b[r, s], code[r, s]
    whole = sc == sweep.full
    los, his = [base[whole] + sa[whole] // size], [base[whole] + (sb[whole] - 1) // size + 1]
    mixed = np.flatnonzero(~whole)
    for c in np.unique(sc[mixed]).tolist():
        if c not in gaps:
            gaps[c] = sweep.res.max_gap(c)
        if gaps[c] > size:
            return None
    if mixed.size:
        pm, am, bm, cm, bb = p[r[mixed]], sa[mixed], sb[mixed], sc[mixed], base[mixed]
        first, last = am // size, (bm - 1) // size
        los.append(bb + first + 1)  # tiles covered whole hold a key: the step is at most size
        his.append(bb + last)
        for tile, lo_key, hi_key in ((first, am, np.minimum(bm, (first + 1) * size)),
                                     (last, np.maximum(am, last * size), bm)):
            hit = np.zeros(mixed.size, dtype=bool)
            for c in np.unique(cm).tolist():
                sel = cm == c
                hit[sel] = sweep.res.count(c, pm[sel], lo_key[sel], hi_key[sel]) > 0
            los.append(bb[hit] + tile[hit])
            his.append(bb[hit] + tile[hit] + 1)
    return merge_intervals(np.concatenate(los), np.concatenate(his))


def residue_atoms(node: ir.Node) -> int:
    """How many distinct residue atoms a concrete pattern has (0: every segment is all keys)."""
    return sum(1 for a in compile_pattern(node)[1] if not isinstance(a, Iv))


def block_graph(node: ir.Node, n: int, size: int) -> np.ndarray:
    """``[nb, nb]`` booleans, ``nb = ceil(n / size)``: a superset of the non-empty blocks of the
    square pattern (a segment with keys marks every block it overlaps); all True when the
    pattern has too many residue atoms to sweep."""
    node = ir.concretize(node, n)
    ir.check_arguments(node)
    nb = -(-n // size)
    if residue_atoms(node) > MAX_PERIODIC:
        return np.ones((nb, nb), dtype=bool)
    return np.concatenate([m for _, m in tile_rows(node, n, n, size)] or [np.zeros((0, nb), dtype=bool)])
