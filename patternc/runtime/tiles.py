"""Plan-driven tile choice: which block sizes a pattern runs fastest at, from its plan's counts.

A block-sparse kernel's time is close to a sum over the tiles it visits, each costing what its
shape (``block_q x block_k``, head dim) and kind (FULL: no predicate; PARTIAL: predicate and
masking) cost, plus a set-up / epilogue cost per non-empty query row (forward, dQ) and key
column (dK/dV). The plan gives the exact tile counts at any block size in milliseconds, so the
default config is the cheapest of a short candidate list under that model (:func:`forward_choice`,
:func:`backward_choice`); the per-tile costs are fitted to H100 measurements
(``benchmarks/dev/tiles_sweep.py``, ``benchmarks/dev/tiles_fit.py``). A candidate replaces the
rule-based config only when it is predicted clearly faster (``MARGIN``), so where the model is
unsure, nothing changes.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from dataclasses import dataclass

from patternc import ir
from patternc.codegen.backward import FLAT, WIDE_STEPS


@dataclass(frozen=True)
class Counts:
    """What a plan at one block size makes a kernel do, per batch element, summed over heads."""

    full: int  # FULL tiles visited
    partial: int  # PARTIAL tiles visited
    rows: int  # query-block rows with at least one tile
    cols: int  # key-block columns with at least one tile
    heaviest: int  # tiles of the longest query-block row


def counts(node: ir.Node, nq: int, nk: int, block_q: int, block_k: int, heads: int) -> Counts:
    """The plan's counts for concrete ``node`` at these lengths, blocks and ``heads`` query heads
    (``patternc.lower.lower``, cached there)."""
    from patternc.lower import lower

    plan = lower(node, nq, nk, block_q=block_q, block_k=block_k, heads=heads)
    per = heads // plan.groups  # heads per head group
    fwd, bwd = plan.forward, plan.backward
    row = fwd.num.long() + fwd.full_num.long()
    col = bwd.num.long() + bwd.full_num.long()
    return Counts(int(fwd.full_num.long().sum()) * per, int(fwd.num.long().sum()) * per,
                  int((row > 0).sum()) * per, int((col > 0).sum()) * per,
                  int(row.max()) if row.numel() else 0)


@dataclass(frozen=True)
class TileCost:
    """Microseconds per FULL tile, per PARTIAL tile and per non-empty line (query row; plus key
    column for the backward), per head and batch element, on the whole GPU."""

    full: float
    partial: float
    line: float

    def time(self, c: Counts, backward: bool) -> float:
        lines = c.rows + (c.cols if backward else 0)
        return self.full * c.full + self.partial * c.partial + self.line * lines


# Fitted (benchmarks/dev/tiles_fit.py) to benchmarks/dev/tiles_fit_h100.json: H100, bf16, D=64, H=16,
# 65,536 tokens, 8 patterns with plain plans (fixed, summary, star, block-local causal, Longformer,
# band(256), BigBird, causal); predicted / measured within 0.77-1.17 on every row but BigBird at
# 128-row blocks (measured 4.5x the prediction: the model never prefers those blocks there).
# Keys: forward (block_q, block_k, warps, stages), backward (block_q, block_k, bm1, bn1, bm2, bn2,
# warps, stages).
FORWARD_D64: dict[tuple[int, ...], TileCost] = {
    (64, 64, 4, 3): TileCost(0.00278, 0.00331, 0.00885),
    (128, 128, 4, 3): TileCost(0.00979, 0.01626, 0.01891),
    (128, 64, 4, 4): TileCost(0.00557, 0.00793, 0.01893),
    (64, 32, 4, 3): TileCost(0.00151, 0.00192, 0.00886),
    (64, 16, 4, 3): TileCost(0.00105, 0.00120, 0.00863),
    (128, 32, 4, 3): TileCost(0.00382, 0.00409, 0.01641),
    (128, 16, 4, 3): TileCost(0.00229, 0.00251, 0.01442),
}
BACKWARD_D64: dict[tuple[int, ...], TileCost] = {
    (64, 64, 64, 64, 64, 64, 4, 2): TileCost(0.00766, 0.00968, 0.01599),
    (128, 128, 64, 128, 128, 64, 8, 2): TileCost(0.03327, 0.04559, 0.04030),
    (64, 32, 64, 32, 64, 32, 4, 2): TileCost(0.00586, 0.00727, 0.00996),
    (64, 16, 64, 16, 64, 16, 4, 2): TileCost(0.00409, 0.00526, 0.00628),
    (128, 32, 64, 32, 128, 32, 4, 2): TileCost(0.01183, 0.01578, 0.01474),
    (128, 16, 64, 16, 128, 16, 4, 2): TileCost(0.00803, 0.01044, 0.00714),
}
# 64 < D <= 128: not fitted; the narrow-key candidates borrow the D=64 costs of their block shape
# (the choice compares configs, so a common factor cancels) and must win by UNFITTED_MARGIN
FORWARD_D128: dict[tuple[int, ...], tuple[int, ...]] = {
    (64, 32, 4, 2): (64, 32, 4, 3), (64, 16, 4, 2): (64, 16, 4, 3)}
# (the backward's D=128 base is D=64's config since session 7: its candidates are D=64's too;
# ``fixed`` at 64k, no summary gather, ms: 64x64 37.3, 64x32 30.9, 64x32 with 32-row steps 32.4)
BACKWARD_D128: dict[tuple[int, ...], tuple[int, ...]] = {
    (64, 32, 64, 32, 64, 32, 4, 2): (64, 32, 64, 32, 64, 32, 4, 2),
    (64, 16, 64, 16, 64, 16, 4, 2): (64, 16, 64, 16, 64, 16, 4, 2)}
MARGIN = 1.2  # a candidate replaces the rule-based config when predicted this much faster
UNFITTED_MARGIN = 1.5
ROW_RULES: dict[int, tuple[tuple[int, ...], tuple[int, ...], int, tuple[int, ...] | None]] = {
    # head dim: (rule, config for short rows, most tiles in a short row, config for long rows)
    64: ((64, 64, 4, 3), (64, 64, 4, 2), 32, None),
    128: ((64, 64, 4, 2), (64, 32, 4, 2), 4, (128, 128, 8, 3)),
}
"""Forward rows of few 64x64 tiles (the plan's heaviest query-block row) leave the pipeline little
to overlap: there the rule's config gives way to a smaller one (D <= 64: two stages instead of
three, one CTA more per SM, unless the rows hold ``PIPELINED_ROWS`` computed FULL tiles; D <= 128:
32-key blocks). The D=64 numbers below predate the computed key blocks (session 12). H100, bf16,
64k tokens, rule -> short-row config (``benchmarks/results/sweep_stages_h100_2026-11-22_s5_n65536_d64.json``,
``sweep_h100_2026-11-22_s4_n65536_d128.json``): D=64 ``block_local`` 0.299 -> 0.289 ms,
``block_local_causal`` / ``sparse_transformer_block`` 0.300 -> 0.255, ``band(256)`` 0.510 ->
0.495; D=128 (measured on 4-tile rows only) ``block_local`` 0.612 -> 0.528, ``block_local_causal``
0.605 -> 0.482. Rows with global keys (Longformer at D=64: 0.653 -> 0.815 with two stages) keep
the rule. At D > 64, patterns whose rows average at least ``LONG_ROWS`` tiles run the dense
patterns' 128x128 tiles (``forward.DENSE_D128``): ``sliding_window_causal`` 5.25 -> 4.88 ms at 64k
(FlexAttention 5.10), 1.24 -> 1.12 at 16k (1.19) (``sweep_h100_2026-11-22_s4_n*_d128.json``); at
D=64 they lose there (2.60 -> 2.74 ms)."""
LONG_ROWS = 48
PIPELINED_ROWS = 4
"""Short rows at D <= 64 that average at least this many FULL tiles, all computed rather than
loaded (:func:`full_runs` and ``runtime.forward.COMPUTED_BLOCKS``), keep the rule's three
stages: with no index load in the loop the deeper pipeline pays again. H100, bf16, two / three
stages, two alternating rounds per pattern in one process, ms (``benchmarks/dev/stages_ab.py``,
``results/stages_ab_h100_2026-11-23_s13_*``): 64k ``block_local`` (4 FULL tiles a row) 0.281 /
0.265, ``band(256)`` (7) 0.514 / 0.488, ``streaming_llm`` (14) 0.911 / 0.914; 16k ``band(256)``
0.135 / 0.131, ``streaming_llm`` 0.227 / 0.221. Rows of fewer FULL tiles keep two:
``block_local_causal`` (1.5 and a diagonal tile) 0.231 / 0.263, ``sparse_transformer_local`` (3)
0.343 / 0.348."""
BACKWARD_SHORT_ROWS = (dataclasses.astuple(WIDE_STEPS)[:8],
                       {64: (64, 64, 32, 64, 64, 32, 4, 2),
                        128: (64, 64, 32, 64, 64, 32, 4, 2, 0, 0, 0, FLAT)}, 4)
"""The backward at D <= 128 on Hopper (``codegen.backward.WIDE_STEPS``, the first config) gives
way to 32-wide steps (the second, per head dim) where the plan's rows hold at most 4 tiles of
64x64 and, at D=128, some are PARTIAL (block-local causal rows: a diagonal tile in every row).
H100, bf16, ms
(``benchmarks/results/sweep_bwd_h100_2026-11-22_s7_*``): ``block_local_causal`` D=64 64k 0.882 ->
0.820, D=128 4k 0.165 -> 0.128, 64k 1.784 -> 1.768. At D=128 the steps run as one flat loop
(``BackwardConfig.steps = FLAT``, session 9: 16k 0.443 -> 0.412, 64k 1.776 -> 1.712; at D=64 flat
loses, 0.817 -> 0.846 at 64k). Rows of FULL tiles keep 64-wide steps at D=128 (``block_local``
1.758 against 1.849 ms at 64k, 0.472 against 0.491 at 16k) and take 32-wide ones at D=64 (0.994
-> 0.919 at 64k) (``results/sweep_bwd_h100_2026-11-22_s9_block_local.json``)."""


def _costs(head_dim: int, backward: bool) -> tuple[dict[tuple[int, ...], TileCost], float] | None:
    """Candidate configs at this head dim with their tile costs, and the margin they must win by."""
    fitted = BACKWARD_D64 if backward else FORWARD_D64
    if head_dim <= 64:
        return fitted, MARGIN
    if head_dim <= 128:
        borrowed = BACKWARD_D128 if backward else FORWARD_D128
        return {c: fitted[d64] for c, d64 in borrowed.items()}, UNFITTED_MARGIN
    return None


def _shape_cost(shape: tuple[int, int], backward: bool) -> TileCost | None:
    """The fitted cost of the D=64 candidate with these plan blocks (the rule-based configs'
    costs at other head dims: only ratios matter)."""
    for cfg, cost in (BACKWARD_D64 if backward else FORWARD_D64).items():
        if cfg[:2] == shape:
            return cost
    return None


def _plain(node: ir.Node, nq: int, nk: int, heads: int, block_q: int, block_k: int) -> bool:
    """Whether the runtime runs ``node`` at these blocks as plain blocks (no residue classes,
    whose gathered launches the plain plan's counts do not describe)."""
    from patternc.runtime import residue

    return residue.decompose(node, nq, nk, heads, block_q, block_k, residue.default_mode()) is None


_ENABLED: bool | None = None  # None: follow $PATTERNC_TILE_MODEL


def enabled() -> bool:
    """Whether the model chooses tiles (``$PATTERNC_TILE_MODEL=0`` keeps the rule-based ones)."""
    if _ENABLED is not None:
        return _ENABLED
    from patternc.runtime.cache import env_flag

    return env_flag("PATTERNC_TILE_MODEL", True)


def enable(on: bool | None = True) -> None:
    """Turn the model on or off for this process (overrides ``$PATTERNC_TILE_MODEL``; None: follow
    it again). Callers cache their choices (``forward.dense_config``, ``backward.dense_config``:
    clear them)."""
    global _ENABLED
    _ENABLED = on


def choose(node: ir.Node, nq: int, nk: int, heads: int, head_dim: int, default: tuple[int, ...],
           backward: bool) -> tuple[int, ...]:
    """The config (a ``ForwardConfig`` / ``BackwardConfig`` field tuple, ``default``'s length) with
    the least predicted time for concrete ``node``: a candidate of this head dim that beats
    ``default`` (the rule-based config) by the margin, else ``default``. Patterns run with residue
    classes keep ``default``; so does everything when the model is off (:func:`enabled`)."""
    return _choose(node, nq, nk, heads, head_dim, default, backward) if enabled() else default


def forward_rows(node: ir.Node, nq: int, nk: int, heads: int, head_dim: int,
                 cfg: tuple[int, ...]) -> tuple[int, ...]:
    """``cfg`` (a forward config tuple), or where it is the head dim's rule and concrete ``node``'s
    plan has only short rows or, at D > 64, long ones (``LONG_ROWS``), the config for such rows
    (``ROW_RULES``; at D <= 64 not for rows of many computed FULL tiles: ``PIPELINED_ROWS``);
    unchanged when the model is off."""
    d = 64 if head_dim <= 64 else 128 if head_dim <= 128 else 0
    if not enabled() or d not in ROW_RULES or cfg != ROW_RULES[d][0]:
        return cfg
    _, short, most, long = ROW_RULES[d]
    c = counts(node, nq, nk, 64, 64, heads)
    if c.heaviest <= most:
        return cfg if d == 64 and _pipelined(node, nq, nk, heads, c) else short
    return long if long is not None and _long_rows(c) else cfg


def backward_rows(node: ir.Node, nq: int, nk: int, heads: int, head_dim: int,
                  cfg: tuple[int, ...]) -> tuple[int, ...]:
    """``cfg`` (a backward config tuple), or where it is the wide-step rule and concrete
    ``node``'s plan has only short rows, with PARTIAL tiles at D > 64, the config for them
    (``BACKWARD_SHORT_ROWS``); unchanged when the model is off."""
    rule, short, most = BACKWARD_SHORT_ROWS
    if not enabled() or head_dim > 128 or cfg != rule:
        return cfg
    c = counts(node, nq, nk, 64, 64, heads)
    masked = c.partial or head_dim <= 64  # D=128 rows of FULL tiles keep 64-wide steps
    return short[64 if head_dim <= 64 else 128] if masked and c.heaviest <= most else cfg


def full_runs(node: ir.Node, nq: int, nk: int, heads: int) -> bool:
    """Whether every head group's rows of concrete ``node``'s 64x64 plan list consecutive FULL key
    blocks (``Runs.bases``: the forward computes them instead of loading them)."""
    from patternc.lower import lower

    plan = lower(node, nq, nk, block_q=64, block_k=64, heads=heads)
    runs, _ = plan.forward.full_runs.bases(plan.groups, plan.forward.num.shape[1])
    return bool(runs.all())


def _pipelined(node: ir.Node, nq: int, nk: int, heads: int, c: Counts) -> bool:
    """Whether the rows' FULL tiles (counts ``c`` at 64x64) average at least ``PIPELINED_ROWS``
    and are computed."""
    forward = importlib.import_module("patternc.runtime.forward")  # the package exports a function forward
    return (c.full >= PIPELINED_ROWS * c.rows and bool(forward.COMPUTED_BLOCKS)
            and full_runs(node, nq, nk, heads))


def _long_rows(c: Counts) -> bool:
    """Whether the plan's rows average at least ``LONG_ROWS`` visited tiles."""
    return bool(c.rows) and c.full + c.partial >= LONG_ROWS * c.rows


def lower_bound(c: Counts, default: tuple[int, int], shape: tuple[int, int], cost: TileCost, nq: int,
                nk: int, heads: int, backward: bool) -> float:
    """A lower bound of ``cost``'s time at blocks ``shape`` from the counts ``c`` at blocks
    ``default``, without lowering (which costs 0.4-1.9 s over all candidates at a million tokens).
    Blocks are aligned powers of two, so one ``shape`` tile overlaps at most ``ov_q * ov_k``
    default tiles: the pairs of the FULL default tiles (short edge tiles left out) need at least
    that many pairs' worth of ``shape`` tiles, every PARTIAL default tile holds a pair, and every
    non-empty default row (column) meets a non-empty ``shape`` row (column)."""
    (dq, dk), (sq, sk) = default, shape
    ov_q, ov_k = max(1, sq // dq), max(1, sk // dk)
    edges = heads * ((-(-nk // dk) if nq % dq else 0) + (-(-nq // dq) if nk % dk else 0))
    tiles = max((max(0, c.full - edges) * dq * dk) / (sq * sk), c.partial / (ov_q * ov_k))
    lines = c.rows / ov_q + (c.cols / ov_k if backward else 0)
    return tiles * min(cost.full, cost.partial) + lines * cost.line


@functools.lru_cache(maxsize=256)
def _choose(node: ir.Node, nq: int, nk: int, heads: int, head_dim: int, default: tuple[int, ...],
            backward: bool, prune: bool = True) -> tuple[int, ...]:
    table = _costs(head_dim, backward)
    base = _shape_cost((default[0], default[1]), backward)
    if table is None or base is None or not _plain(node, nq, nk, heads, default[0], default[1]):
        return default
    cands, margin = table
    here = counts(node, nq, nk, default[0], default[1], heads)
    best, best_t = default, base.time(here, backward) / margin
    for cfg, cost in cands.items():
        if cfg[:2] == default[:2]:
            continue
        if prune and lower_bound(here, (default[0], default[1]), (cfg[0], cfg[1]), cost, nq, nk,
                                 heads, backward) >= best_t:
            continue  # cannot win: not worth a lowering
        if not _plain(node, nq, nk, heads, cfg[0], cfg[1]):
            continue
        t = cost.time(counts(node, nq, nk, cfg[0], cfg[1], heads), backward)
        if t < best_t:
            best, best_t = cfg, t
    return best
