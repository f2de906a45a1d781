"""Which launch writes which head group when a call runs several launches over disjoint parts of
one pattern: a plain rest, then residue-gathered or summary parts (``runtime.residue``,
``runtime.summary``), in the forward (``out`` / ``lse``) and the backward (dQ / dK / dV).

Each launch, per head group of the pattern, either skips the group's heads (no program writes
them), stores its result, or adds it to what the launches before stored (the forward merges by
log-sum-exp, the backward adds gradients). A group is stored by the first launch with work in it
and added to by the later ones; a group no launch has work in is stored (zeros, ``-inf``) by the
first launch that runs anyway. Launches that skip every group are dropped. So
``heads(window(l, 0), strided(l)) & causal`` runs its window heads in the rest and its strided
heads in the gathered part, each stored once: no pass writes zeros for the other half of the
heads, nor reads them back to merge (H100, 64k tokens: the rest's zero heads took 51 us of a
0.43 ms forward, and adding into them made the gathered part slower than the whole-pattern one).

    >>> plan([(True, False), (False, True)])
    ((0, (1, 0)), (1, (0, 1)))
    >>> plan([(False, False), (True, False), (True, False)])
    ((1, (1, 1)), (2, (2, 0)))
"""

from __future__ import annotations

from collections.abc import Sequence

SKIP, STORE, ADD = 0, 1, 2


def plan(active: Sequence[Sequence[bool]]) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """The launches that run, in order, as ``(index, modes)``: per head group ``SKIP``, ``STORE``
    or ``ADD``. ``active[i][g]``: launch ``i`` has work in group ``g`` (every launch has as many
    groups as the first). A launch with nothing to write is left out; groups without work
    anywhere are stored (zeros) by the first launch that runs anyway."""
    groups = len(active[0])
    if any(len(a) != groups for a in active):
        raise ValueError("the launches of one call must share their head groups")
    zeros = [not any(a[g] for a in active) for g in range(groups)]
    first = next((i for i, a in enumerate(active) if any(a)), 0)
    written = [False] * groups
    out = []
    for i, a in enumerate(active):
        modes = tuple(ADD if a[g] and written[g] else STORE if a[g] or (zeros[g] and i == first) else SKIP
                      for g in range(groups))
        written = [w or m != SKIP for w, m in zip(written, modes)]
        if any(m != SKIP for m in modes):
            out.append((i, modes))
    return tuple(out)


def mask(modes: Sequence[int], mode: int) -> int:
    """The bitmask of the groups in ``mode`` (group ``g`` is bit ``g``), for a kernel argument.

    >>> mask((SKIP, STORE, SKIP), SKIP)
    5
    """
    return sum(1 << g for g, m in enumerate(modes) if m == mode)
