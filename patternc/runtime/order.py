"""The order in which work items launch (forward query rows, backward key and query tiles)."""

from __future__ import annotations

import numpy as np

SPREAD = 2.0
"""Items launch heaviest first only where the heaviest costs more than ``SPREAD`` times the mean
(global rows, split rows): a long item then starts before short ones fill the gaps. Near-uniform
items keep sequence order, so that programs running together read the same key (forward) or
query (backward) blocks from L2: block-local causal rows cost 1 to 4 blocks, and sorted they
would run every fourth row of the sequence together."""


def heaviest_first(cost: np.ndarray) -> np.ndarray:
    """Indices of ``cost`` in launch order (a stable sort by decreasing cost, or sequence order
    where the costs are near-uniform; see ``SPREAD``).

        >>> heaviest_first(np.array([1, 2, 3, 4])).tolist(), heaviest_first(np.array([1, 1, 9])).tolist()
        ([0, 1, 2, 3], [2, 0, 1])
    """
    if cost.size and cost.max() > SPREAD * cost.mean():
        return np.argsort(-cost, kind="stable")
    return np.arange(cost.size)
