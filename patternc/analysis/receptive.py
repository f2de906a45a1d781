"""The receptive field: the fewest stacked layers after which every query depends on every key.

One layer of a pattern ``A`` with the residual path is the graph ``A | I`` (query ``i`` depends
on key ``j``); ``L`` stacked layers are its ``L``-th boolean power. The target is every key, or
every key at or before the query when the pattern lies inside ``causal``. The receptive field is
the least ``L >= 1`` whose power covers the target, or ``never`` when the powers stop growing
first. ``nq = nk = n`` (stacked layers are self-attention).

How it is computed, most exact first:

1. ``n <= EXACT_TOKENS``: the token graph itself, by repeated squaring and a binary search over
   the powers (``O(n^3 log n)`` on small dense matrices). Exact.
2. One layer suffices (``target - (A | I)`` has no pair, counted exactly by ``rows.row_counts``).
3. A *hub*: a key ``t`` that every query sees and whose row holds every key (a global token,
   non-causal patterns). Then two layers suffice, and one does not. Exact.
4. Translation-invariant patterns (band, window, causal, strided, dilated and their set
   algebra): the offsets ``D = {p - j}`` of one layer. Sums of ``L`` offsets of one sign keep
   every intermediate token in range (upper bound); sums of any sign whose partial sums stay in
   ``[-(n-1), n-1]`` are necessary (lower bound). Equal bounds are exact; interval offsets give
   ``ceil((n-1) / reach)`` in closed form.
5. Otherwise the block graph at a coarse block size (from ``patternc.lower``): a token path maps
   to a block path no longer than itself, so the block graph's answer is a lower bound, and a
   target block it never reaches proves ``never``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.signal import fftconvolve

from patternc import ir
from patternc.analysis.atoms import in_tokens, merged
from patternc.analysis.blocks import offset_set
from patternc.analysis.rows import Sweep, dense_rows, has_pair, row_counts
from patternc.analysis.tiles import block_graph, merge_intervals

EXACT_TOKENS = 1024
MAX_BLOCKS = 1024
HUB_CANDIDATES = 4
SOURCE_LAYERS = 8192  # breadth-first layers spent on single sources, in all

T = TypeVar("T")


@dataclass(frozen=True)
class Receptive:
    """``layers``: the receptive field when ``exact`` (None: never); otherwise a lower bound
    (None: unknown) and ``upper`` an upper bound (None: none known)."""

    layers: int | None
    exact: bool
    method: str
    upper: int | None = None

    @property
    def never(self) -> bool:
        return self.exact and self.layers is None

    def __str__(self) -> str:
        if self.never:
            return "never"
        if self.exact:
            return str(self.layers)
        if self.upper is not None:
            return f"{self.layers or 1}..{self.upper}"
        return "?" if self.layers is None else f">= {self.layers}"

    def to_json(self) -> int | str | None:
        return "never" if self.never else self.layers


def least_power(one: T, mul: Callable[[T, T], T], covers: Callable[[T], bool],
                same: Callable[[T, T], bool]) -> int | None:
    """Least ``L >= 1`` with ``covers(one^L)`` for a monotone power (``one`` holds the identity),
    by repeated squaring and a binary search; None when the powers stop growing first."""
    if covers(one):
        return 1
    powers = [one]
    while True:
        nxt = mul(powers[-1], powers[-1])
        if covers(nxt):
            break
        if same(nxt, powers[-1]):
            return None
        powers.append(nxt)
    # one^(2^(K-1)) misses, one^(2^K) covers: add the largest powers that still miss
    acc, layers = powers[-1], 1 << (len(powers) - 1)
    for k in range(len(powers) - 2, -1, -1):
        cand = mul(acc, powers[k])
        if not covers(cand):
            acc, layers = cand, layers + (1 << k)
    return layers + 1


def _matrix_layers(adj: np.ndarray, target: np.ndarray) -> int | None:
    """Least power of a dense boolean adjacency (identity included) covering ``target``."""
    one = adj.astype(np.float32)
    return least_power(one, lambda x, y: ((x @ y) > 0).astype(np.float32),
                       lambda x: bool(((x > 0) | ~target).all()), lambda x, y: bool((x == y).all()))


def receptive_field(node: ir.Node, n: int, *, block: int = 128,
                    exact_tokens: int = EXACT_TOKENS) -> Receptive:
    """The receptive field of a head-free pattern at ``n`` tokens (see the module docstring);
    the token graph is used up to ``exact_tokens`` tokens, the structural arguments above."""
    node = ir.concretize(node, n)
    ir.check_arguments(node)
    if n <= 1:
        return Receptive(1, True, "a single token keeps itself")
    if n <= exact_tokens:
        return _exact(node, n)
    inside = not has_pair(node - ir.Causal(), n, n)
    layer = node | ir.Band(0)
    target: ir.Node = ir.Causal() if inside else ir.Full()
    if not has_pair(target - layer, n, n):
        return Receptive(1, True, "one layer already covers every key")
    if not inside:
        hub = _hub(node, layer, n)
        if hub is not None:
            return Receptive(2, True, f"every query sees token {hub}, which sees every key")
    offsets = _offsets(node, n)
    if offsets is not None:
        return _offset_layers(offsets, n, inside)
    low = _block_bound(node, n, inside, block)
    if low.exact:
        return low
    if (low.layers or 1) < 2:  # one layer was checked above and does not suffice
        low = Receptive(2, False, "one layer does not cover every key")
    up = _upper_from_parts(node, n, inside)
    low = _from_sources(node, n, inside, low, None if up is None else up[0])
    if low.exact:
        return low
    if up is not None and up[0] == low.layers:
        return Receptive(up[0], True, f"{low.method} (a lower bound) equals the receptive field of {up[1]}, "
                         "a part of the pattern (an upper bound)")
    if up is None:
        return low
    return Receptive(low.layers, False, f"{low.method}; upper bound from {up[1]}, a part of it", up[0])


def _parts(node: ir.Node) -> list[ir.Node]:
    """Sub-patterns contained in ``node``: union members, with intersections distributed."""
    if isinstance(node, ir.Union):
        return [q for c in node.parts for q in _parts(c)]
    if isinstance(node, ir.Intersect):
        for k, c in enumerate(node.parts):
            if isinstance(c, ir.Union):
                rest = node.parts[:k] + node.parts[k + 1:]
                return [q for u in c.parts for q in _parts(ir.Intersect((*rest, u)))]
    return [node]


def _upper_from_parts(node: ir.Node, n: int, inside: bool) -> tuple[int, str] | None:
    # more pairs never slow reachability down: a contained part with the same target bounds it
    best: tuple[int, str] | None = None
    for part in _parts(node):
        offsets = _offsets(part, n)
        if offsets is None or bool(offsets[:n - 1].any()) == inside:
            continue  # not translation-invariant, or its target differs from the pattern's
        rf = _offset_layers(offsets, n, inside)
        bound = rf.layers if rf.exact else rf.upper
        if bound is not None and (best is None or bound < best[0]):
            best = (bound, part.sap())
    return best


def _exact(node: ir.Node, n: int) -> Receptive:
    adj = dense_rows(node, n, n, (0, n)) | np.eye(n, dtype=bool)
    tril = np.tri(n, dtype=bool)
    inside = not (adj & ~tril).any()
    layers = _matrix_layers(adj, tril if inside else np.ones((n, n), dtype=bool))
    return Receptive(layers, True, "token graph")


def _hub(node: ir.Node, layer: ir.Node, n: int) -> int | None:
    cands: list[int] = []
    for sub in node.walk():
        if isinstance(sub, (ir.Cols, ir.Global)):
            lo, _ = merged(sub.tokens, n)
            cands.extend(int(x) for x in lo[:HUB_CANDIDATES])
    for t in dict.fromkeys(cands[:HUB_CANDIDATES]):
        if int(row_counts(layer, n, n, rows=(t, t + 1)).counts[0]) != n:
            continue
        if _sees_column(node, t, n) or int(row_counts(layer, n, n, keys=(t, t + 1)).counts.min()) == 1:
            return t
    return None


def _sees_column(node: ir.Node, t: int, n: int) -> bool:
    """True when the structure alone shows that every query sees key ``t`` (False: unknown)."""
    match node:
        case ir.Full():
            return True
        case ir.Cols(tokens) | ir.Global(tokens):
            lo, hi = merged(tokens, n)
            return bool(in_tokens(np.array([t]), lo, hi)[0])
        case ir.Union(parts):
            return any(_sees_column(c, t, n) for c in parts)
        case ir.Intersect(parts):
            return all(_sees_column(c, t, n) for c in parts)
    return False


# --------------------------------------------------------------------------- offsets


def _offsets(node: ir.Node, n: int) -> np.ndarray | None:
    """``D[d + n - 1]``: offset ``d`` in ``[-(n-1), n-1]`` is in one layer (with the residual),
    for translation-invariant patterns; None for the others."""
    out = offset_set(node, -(n - 1), n - 1)
    if out is not None:
        out[n - 1] = True
    return out


def _conv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sumset of two offset sets (boolean indicators) by FFT; counts are far below 2**52."""
    return fftconvolve(x.astype(np.float64), y.astype(np.float64)) > 0.5


def _all(x: np.ndarray) -> bool:
    return bool(x.all())


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    return bool((x == y).all())


def _reach(ind: np.ndarray) -> int | None:
    """``r`` when the offsets ``ind[0..]`` (``ind[0]`` set) are exactly ``[0, r]``, else None."""
    stop = int(np.argmin(ind)) if not ind.all() else ind.size
    return stop - 1 if not ind[stop:].any() else None


def _one_signed(ind: np.ndarray) -> int | None:
    """Least ``L`` whose ``L``-fold sums of offsets ``ind`` (``0..n-1``, 0 included) cover them all."""
    n = ind.size
    r = _reach(ind)
    if r is not None:
        return None if r == 0 else max(1, -(-(n - 1) // r))
    nz = np.flatnonzero(ind[1:]) + 1
    if nz.size == 0 or math.gcd(*nz.tolist()) > 1:
        return None
    return least_power(ind, lambda x, y: _conv(x, y)[:n], _all, _same)


def _two_signed(ind: np.ndarray) -> int | None:
    """Lower bound: sums of any sign, each partial sum kept in ``[-(n-1), n-1]``."""
    m = ind.size  # 2n - 1, offset 0 at the centre
    half = m // 2
    return least_power(ind, lambda x, y: _conv(x, y)[half:half + m], _all, _same)


def _offset_layers(offsets: np.ndarray, n: int, inside: bool) -> Receptive:
    right = offsets[n - 1:]          # d >= 0: keys at or before the query
    left = offsets[n - 1::-1]        # d <= 0, mirrored
    up = _one_signed(right)
    if inside:
        return Receptive(up, True, "offset sums (translation-invariant, causal)")
    down = _one_signed(left)
    upper = None if up is None or down is None else max(up, down)
    if _reach(right) is not None and _reach(left) is not None:
        return Receptive(upper, True, "offset intervals (translation-invariant)")
    nz = np.flatnonzero(offsets) - (n - 1)
    if math.gcd(*np.abs(nz).tolist()) > 1:
        return Receptive(None, True, "every offset is a multiple of the same number")
    lower = _two_signed(offsets)
    if lower is None:  # even sums that may leave the sequence never cover every offset
        return Receptive(None, True, "offset sums (translation-invariant) never cover every offset")
    if lower == upper:
        return Receptive(upper, True, "offset sums (translation-invariant)")
    return Receptive(lower, False, "offset sums (translation-invariant) bound it", upper)


# --------------------------------------------------------------------------- single sources


def _minus(lo: np.ndarray, hi: np.ndarray, olo: np.ndarray, ohi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)`` minus ``[olo, ohi)`` (both sorted disjoint, the second inside the first)."""
    pos = np.concatenate([lo, hi, olo, ohi])
    delta = np.concatenate([np.ones_like(lo), -np.ones_like(hi), -np.ones_like(olo), np.ones_like(ohi)])
    order = np.lexsort((delta, pos))
    pos, cover = pos[order], np.cumsum(delta[order])
    starts = np.flatnonzero((cover == 1) & np.r_[True, cover[:-1] != 1])
    ends = np.flatnonzero((cover != 1) & np.r_[False, cover[:-1] == 1])
    return pos[starts], pos[ends]


def eccentricity(node: ir.Node, n: int, source: int, inside: bool, max_layers: int) -> int | bool | None:
    """Layers until query ``source`` depends on every key of its target, by breadth-first search
    over interval sets (each token enters the frontier once: ``O(n K)`` in all). Only for
    patterns without residue atoms (every segment with keys is all keys). Returns None for
    never, False when ``max_layers`` ran out."""
    sweep = Sweep(node, n, n, 0, n)
    if sweep.per:
        return False
    end = source + 1 if inside else n
    lo, hi = np.array([source]), np.array([source + 1])
    flo, fhi = lo, hi
    for layer in range(1, max_layers + 1):
        pos = np.concatenate([np.arange(a, b) for a, b in zip(flo.tolist(), fhi.tolist())])
        parts_lo, parts_hi = [lo], [hi]
        for k in range(0, pos.size, 1 << 16):
            _, a, b, counts = sweep.segments_at(pos[k:k + (1 << 16)])
            keep = counts > 0
            parts_lo.append(a[keep])
            parts_hi.append(b[keep])
        nlo, nhi = merge_intervals(np.concatenate(parts_lo), np.concatenate(parts_hi))
        if nlo.size and nlo[0] <= 0 and nhi[0] >= end:
            return layer
        flo, fhi = _minus(nlo, nhi, lo, hi)
        if flo.size == 0:
            return None
        lo, hi = nlo, nhi
    return False


def _from_sources(node: ir.Node, n: int, inside: bool, low: Receptive, upper: int | None) -> Receptive:
    """Raise a lower bound with the exact eccentricities of the end tokens (their maximum is the
    receptive field of most patterns; with a matching upper bound it is exact)."""
    budget, best, used = SOURCE_LAYERS, low.layers or 1, []
    for src in (n - 1, 0):
        if upper is not None and best >= upper:
            break
        ecc = eccentricity(node, n, src, inside, budget)
        if ecc is None:
            return Receptive(None, True, f"query {src} never depends on every key it could")
        if ecc is False:
            break
        used.append(src)
        budget -= int(ecc)
        best = max(best, int(ecc))
    if best == (low.layers or 1) or not used:
        return low
    return Receptive(best, False, f"the exact eccentricity of query {'/'.join(map(str, used))}")


# --------------------------------------------------------------------------- block graph


def _block_bound(node: ir.Node, n: int, inside: bool, block: int) -> Receptive:
    size = max(block, -(-n // MAX_BLOCKS))
    adj = block_graph(node, n, size) | np.eye(-(-n // size), dtype=bool)
    nb = adj.shape[0]
    target = np.tri(nb, dtype=bool) if inside else np.ones((nb, nb), dtype=bool)
    layers = _matrix_layers(adj, target)
    if layers is None:
        return Receptive(None, True, f"blocks of {size} tokens never reach every target block")
    return Receptive(layers, False, f"lower bound from the graph of {size}-token blocks")
