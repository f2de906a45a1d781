"""The generator behind ``random`` and ``random_blocks``.

Each row's draw is a pure function of ``(seed, row, pool)``: ``row`` is the query position ``p``
(or query block ``p // b``) and ``pool`` the number of keys ``nk`` (or key blocks
``ceil(nk / b)``). It does not depend on ``nq``, the device, block sizes or the call, so a decode
step sees exactly the row its prefill saw.

The draw is Floyd's algorithm for a uniform ``k``-subset of ``range(pool)``, ``k = min(r, pool)``,
fed by a counter-based hash (SplitMix64's finalizer over ``(salt, seed, row, pool, step)``):
step ``t = pool - k + s`` takes ``x = hash % (t + 1)``, or ``t`` itself when ``x`` was already
taken. Rows come back sorted.

    >>> sample_rows(seed=0, rows=np.array([5]), pool=10, r=3, salt=SALT_KEYS).shape
    (1, 3)
"""

from __future__ import annotations

import numpy as np

_M64 = (1 << 64) - 1
SALT_KEYS = 0x52414E44  # "RAND": random(r, seed)
SALT_BLOCKS = 0x424C4B53  # "BLKS": random_blocks(r, b, seed)
_CHUNK = 1 << 16  # rows per vectorized step, to bound memory


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _prefix(salt: int, seed: int, rows: np.ndarray, pool: int) -> np.ndarray:
    """The hash state after ``(salt, seed, row, pool)``: the same for every step of a row."""
    h = _splitmix(np.full(1, (salt ^ (seed & _M64)) & _M64, dtype=np.uint64))  # one value for all rows
    h = _splitmix(h ^ rows.astype(np.int64).astype(np.uint64))
    return _splitmix(h ^ np.uint64(pool & _M64))


def sample_rows(seed: int, rows: np.ndarray, pool: int, r: int, salt: int) -> np.ndarray:
    """``[len(rows), min(r, pool)]`` int64: each row's sorted distinct draws from ``range(pool)``."""
    k = max(0, min(r, pool))
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size, k), dtype=np.int64)
    if k == 0 or rows.size == 0:
        return out
    with np.errstate(over="ignore"):
        for lo in range(0, rows.size, _CHUNK):
            part = rows[lo:lo + _CHUNK]
            chosen = out[lo:lo + _CHUNK]
            # the hash chain's prefix does not depend on the step: computed once per chunk
            pre = _prefix(salt, seed, part, pool)
            for s in range(k):
                t = pool - k + s
                x = (_splitmix(pre ^ np.uint64(t)) % np.uint64(t + 1)).astype(np.int64)
                chosen[:, s] = np.where(_taken(chosen[:, :s], x), t, x)
    _sort_rows(out)
    return out


def _taken(chosen: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether ``x`` is among each row's ``chosen`` draws (column by column for a few columns:
    a 2-D comparison reduced along its short axis costs several times more)."""
    if chosen.shape[1] > 8:
        return (chosen == x[:, None]).any(axis=1)
    dup = np.zeros(x.shape, dtype=bool)
    for c in range(chosen.shape[1]):
        dup |= chosen[:, c] == x
    return dup


_NETWORKS = {2: ((0, 1),), 3: ((0, 1), (1, 2), (0, 1)), 4: ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2))}
"""Sorting networks for short rows: a few column minima / maxima instead of a sort per row."""


def _sort_rows(out: np.ndarray) -> None:
    """Sort each row of ``out`` in place."""
    net = _NETWORKS.get(out.shape[1])
    if net is None:
        out.sort(axis=1)
        return
    for a, b in net:
        lo = np.minimum(out[:, a], out[:, b])
        np.maximum(out[:, a], out[:, b], out=out[:, b])
        out[:, a] = lo


def random_keys(r: int, seed: int, positions: np.ndarray, nk: int) -> np.ndarray:
    """Keys of ``random(r, seed)`` for query positions ``positions``: ``[len, min(r, nk)]``."""
    return sample_rows(seed, positions, nk, r, SALT_KEYS)


def random_key_blocks(r: int, b: int, seed: int, query_blocks: np.ndarray, nk: int) -> np.ndarray:
    """Key blocks (of size ``b``) of ``random_blocks(r, b, seed)`` for query blocks ``p // b``."""
    return sample_rows(seed, query_blocks, -(-nk // b), r, SALT_BLOCKS)
