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


def _hash(salt: int, seed: int, rows: np.ndarray, pool: int, step: int) -> np.ndarray:
    h = _splitmix(np.full(rows.shape, (salt ^ (seed & _M64)) & _M64, dtype=np.uint64))
    for v in (rows.astype(np.int64).astype(np.uint64), np.uint64(pool & _M64), np.uint64(step)):
        h = _splitmix(h ^ v)
    return h


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
            for s in range(k):
                t = pool - k + s
                x = (_hash(salt, seed, part, pool, t) % np.uint64(t + 1)).astype(np.int64)
                dup = (chosen[:, :s] == x[:, None]).any(axis=1)
                chosen[:, s] = np.where(dup, t, x)
    out.sort(axis=1)
    return out


def random_keys(r: int, seed: int, positions: np.ndarray, nk: int) -> np.ndarray:
    """Keys of ``random(r, seed)`` for query positions ``positions``: ``[len, min(r, nk)]``."""
    return sample_rows(seed, positions, nk, r, SALT_KEYS)


def random_key_blocks(r: int, b: int, seed: int, query_blocks: np.ndarray, nk: int) -> np.ndarray:
    """Key blocks (of size ``b``) of ``random_blocks(r, b, seed)`` for query blocks ``p // b``."""
    return sample_rows(seed, query_blocks, -(-nk // b), r, SALT_BLOCKS)
