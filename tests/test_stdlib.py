"""The standard pattern library: every exported pattern pinned to its paper's definition.

Each definition below is written from the paper (see the header of the ``.sap`` file) directly
in numpy on query positions ``p`` (queries aligned to the end of the keys, SPEC section 1) and
keys ``j``; none of it goes through ``patternc.reference``'s evaluator. The random part of
BigBird is the project's documented generator (``patternc.rng``), the only thing a test cannot
restate. Each pattern's complexity class, as the analysis reports it at the paper's defaults,
must be the paper's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import patternc
from patternc.rng import random_key_blocks

STDLIB = Path(patternc.__file__).parent / "stdlib_patterns"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "stdlib.md"

Def = Callable[..., np.ndarray]  # (p, j, nk, heads, **params) -> bool [H?, nq, nk]


def _in(x: np.ndarray, tokens: list[int]) -> np.ndarray:
    return np.isin(x, np.asarray(tokens, dtype=np.int64))


# ---------------------------------------------------------------- the papers' definitions, in numpy

def dense(p, j, nk):  # type: ignore[no-untyped-def]
    return np.ones(np.broadcast_shapes(p.shape, j.shape), dtype=bool)


def dense_causal(p, j, nk):  # type: ignore[no-untyped-def]
    return j <= p  # Vaswani et al.: no leftward information flow


def sliding_window(p, j, nk, w=512):  # type: ignore[no-untyped-def]
    return np.abs(p - j) <= w // 2  # Longformer: w/2 tokens on each side


def sliding_window_causal(p, j, nk, w=4096):  # type: ignore[no-untyped-def]
    return (j >= p - w) & (j <= p)  # Mistral: positions between i - W and i


def dilated_sliding_window(p, j, nk, w=512, d=2):  # type: ignore[no-untyped-def]
    dist = p - j
    return (np.abs(dist) <= (w // 2) * d) & (dist % d == 0)


def dilated_sliding_window_causal(p, j, nk, w=512, d=2):  # type: ignore[no-untyped-def]
    return dilated_sliding_window(p, j, nk, w, d) & (j <= p)


def _global(p, j, g):  # type: ignore[no-untyped-def]
    return _in(p, g) | _in(j, g)  # attends to all, attended by all


def longformer(p, j, nk, w=512, g=(0,)):  # type: ignore[no-untyped-def]
    return sliding_window(p, j, nk, w) | _global(p, j, list(g))


def longformer_dilated(p, j, nk, w=512, d=2, g=(0,)):  # type: ignore[no-untyped-def]
    return dilated_sliding_window(p, j, nk, w, d) | _global(p, j, list(g))


def longformer_heads(p, j, nk, heads, w=512, d=2, g=(0,)):  # type: ignore[no-untyped-def]
    # first half of the heads: plain window, second half: dilated window; global on all
    planes = [sliding_window(p, j, nk, w) if h < heads // 2 else dilated_sliding_window(p, j, nk, w, d)
              for h in range(heads)]
    return np.stack(planes) | _global(p, j, list(g))[None]


def _random_blocks(p, j, nk, r, b, seed):  # type: ignore[no-untyped-def]
    qb = p[:, 0] // b
    out = np.zeros((p.shape[0], nk), dtype=bool)
    for row, q in enumerate(qb):
        chosen = random_key_blocks(r, b, seed, np.array([q]), nk)[0]
        out[row] = _in(j[0] // b, list(chosen))
    return out


def bigbird_itc(p, j, nk, b=64, w=192, r=3, seed=0):  # type: ignore[no-untyped-def]
    # window of width w (w/2 each side) + first and last block global + r random key blocks
    g = [*range(0, b), *range(nk - b, nk)]
    return (np.abs(p - j) <= w // 2) | _global(p, j, g) | _random_blocks(p, j, nk, r, b, seed)


def bigbird_etc(p, j, nk, b=84, w=252, g=256, r=0, seed=0):  # type: ignore[no-untyped-def]
    # extra global tokens are the first g positions
    return (np.abs(p - j) <= w // 2) | _global(p, j, list(range(g))) | _random_blocks(p, j, nk, r, b, seed)


def _stride(nk, l):  # type: ignore[no-untyped-def]
    return math.isqrt(nk) if l is None else l  # l close to sqrt(n)


def sparse_transformer_strided(p, j, nk, l=None):  # type: ignore[no-untyped-def]
    l = _stride(nk, l)
    a1 = (j >= np.maximum(0, p - l)) & (j <= p)  # A(1) = {t, ..., i}, t = max(0, i - l)
    a2 = (p - j) % l == 0  # A(2) = {j : (i - j) mod l = 0}
    return (a1 | a2) & (j <= p)


def sparse_transformer_strided_heads(p, j, nk, heads, l=None):  # type: ignore[no-untyped-def]
    l = _stride(nk, l)
    a1 = (j >= np.maximum(0, p - l)) & (j <= p)
    a2 = ((p - j) % l == 0) & (j <= p)
    return np.stack([a1 if h < heads // 2 else a2 for h in range(heads)])


def _c(nk, c):  # type: ignore[no-untyped-def]
    return min(8, math.isqrt(nk)) if c is None else c


def sparse_transformer_fixed(p, j, nk, l=None, c=None):  # type: ignore[no-untyped-def]
    l, c = _stride(nk, l), _c(nk, c)
    a1 = j // l == p // l  # own block
    a2 = j % l >= l - c  # summary positions of every block
    return (a1 | a2) & (j <= p)


def sparse_transformer_fixed_heads(p, j, nk, heads, l=None, c=None):  # type: ignore[no-untyped-def]
    l, c = _stride(nk, l), _c(nk, c)
    a1 = (j // l == p // l) & (j <= p)
    a2 = (j % l >= l - c) & (j // l != p // l) & (j <= p)  # summaries of the other blocks
    return np.stack([a1 if h < heads // 2 else a2 for h in range(heads)])


def sparse_transformer_local(p, j, nk, l=None):  # type: ignore[no-untyped-def]
    l = _stride(nk, l)
    return (j >= np.maximum(0, p - l)) & (j <= p)


def sparse_transformer_stride(p, j, nk, l=None):  # type: ignore[no-untyped-def]
    return ((p - j) % _stride(nk, l) == 0) & (j <= p)


def sparse_transformer_block(p, j, nk, l=None):  # type: ignore[no-untyped-def]
    l = _stride(nk, l)
    return (j // l == p // l) & (j <= p)


def sparse_transformer_summary(p, j, nk, l=None, c=None):  # type: ignore[no-untyped-def]
    l, c = _stride(nk, l), _c(nk, c)
    return (j % l >= l - c) & (j // l != p // l) & (j <= p)


def star_transformer(p, j, nk):  # type: ignore[no-untyped-def]
    # relay at 0 (reads all, read by all); satellite i reads i - 1, i, i + 1
    return (np.abs(p - j) <= 1) | (p == 0) | (j == 0)


def star_transformer_ring(p, j, nk):  # type: ignore[no-untyped-def]
    ring = ((p == 1) & (j == nk - 1)) | ((p == nk - 1) & (j == 1))
    return star_transformer(p, j, nk) | ring


def block_local(p, j, nk, b=256):  # type: ignore[no-untyped-def]
    return p // b == j // b


def block_local_causal(p, j, nk, b=256):  # type: ignore[no-untyped-def]
    return (p // b == j // b) & (j <= p)


def prefix_lm(p, j, nk, m=None):  # type: ignore[no-untyped-def]
    m = nk // 2 if m is None else m
    return ((p < m) & (j < m)) | (j <= p)  # fully visible prefix, causal after


def streaming_llm(p, j, nk, sinks=4, recent=1020):  # type: ignore[no-untyped-def]
    return ((j < sinks) | (p - j < recent)) & (j <= p)


# ---------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    file: str
    name: str
    define: Def
    complexity: str  # the paper's class, at the defaults
    small: dict[str, Any] = field(default_factory=dict)  # bindings that make n = 64 interesting
    heads: int | None = None


CASES = [
    Case("dense", "dense", dense, "O(n^2)"),
    Case("dense", "dense_causal", dense_causal, "O(n^2)"),
    Case("sliding_window", "sliding_window", sliding_window, "O(n)", {"w": 10}),
    Case("sliding_window", "sliding_window_causal", sliding_window_causal, "O(n)", {"w": 7}),
    Case("dilated_sliding_window", "dilated_sliding_window", dilated_sliding_window, "O(n)",
         {"w": 8, "d": 3}),
    Case("dilated_sliding_window", "dilated_sliding_window_causal", dilated_sliding_window_causal, "O(n)",
         {"w": 12, "d": 2}),
    Case("longformer", "longformer", longformer, "O(n)", {"w": 8, "g": [0, 5, 30]}),
    Case("longformer", "longformer_dilated", longformer_dilated, "O(n)", {"w": 8, "d": 3, "g": [1, 40]}),
    Case("longformer", "longformer_heads", longformer_heads, "O(n)", {"w": 6, "d": 2, "g": [0]}, heads=4),
    Case("bigbird", "bigbird_itc", bigbird_itc, "O(n)", {"b": 8, "w": 24, "r": 2, "seed": 3}),
    Case("bigbird", "bigbird_etc", bigbird_etc, "O(n)", {"b": 6, "w": 18, "g": 3, "r": 1, "seed": 1}),
    Case("sparse_transformer", "sparse_transformer_strided", sparse_transformer_strided, "O(n sqrt n)",
         {"l": 6}),
    Case("sparse_transformer", "sparse_transformer_strided_heads", sparse_transformer_strided_heads,
         "O(n sqrt n)", {"l": 5}, heads=2),
    Case("sparse_transformer", "sparse_transformer_fixed", sparse_transformer_fixed, "O(n sqrt n)",
         {"l": 8, "c": 2}),
    Case("sparse_transformer", "sparse_transformer_fixed_heads", sparse_transformer_fixed_heads,
         "O(n sqrt n)", {"l": 8, "c": 3}, heads=4),
    Case("sparse_transformer", "sparse_transformer_local", sparse_transformer_local, "O(n sqrt n)", {"l": 7}),
    Case("sparse_transformer", "sparse_transformer_stride", sparse_transformer_stride, "O(n sqrt n)",
         {"l": 7}),
    Case("sparse_transformer", "sparse_transformer_block", sparse_transformer_block, "O(n sqrt n)", {"l": 9}),
    Case("sparse_transformer", "sparse_transformer_summary", sparse_transformer_summary, "O(n sqrt n)",
         {"l": 8, "c": 3}),
    Case("star_transformer", "star_transformer", star_transformer, "O(n)"),
    Case("star_transformer", "star_transformer_ring", star_transformer_ring, "O(n)"),
    Case("block_local", "block_local", block_local, "O(n)", {"b": 10}),
    Case("block_local", "block_local_causal", block_local_causal, "O(n)", {"b": 16}),
    Case("prefix_lm", "prefix_lm", prefix_lm, "O(n^2)", {"m": 20}),
    Case("streaming_llm", "streaming_llm", streaming_llm, "O(n)", {"sinks": 3, "recent": 9}),
]
IDS = [c.name for c in CASES]


def load(case: Case, **bindings: Any) -> patternc.Node:
    return patternc.load(STDLIB / f"{case.file}.sap")[case.name](**bindings)


def expected(case: Case, nq: int, nk: int, **bindings: Any) -> np.ndarray:
    p = np.arange(nq, dtype=np.int64)[:, None] + (nk - nq)
    j = np.arange(nk, dtype=np.int64)[None, :]
    kw = {"heads": case.heads} if case.heads else {}
    out = case.define(p, j, nk, **kw, **bindings)
    return np.broadcast_to(out, ((case.heads,) if case.heads else ()) + (nq, nk))


def actual(case: Case, node: patternc.Node, nq: int, nk: int) -> np.ndarray:
    return node.mask(nq, nk=nk, heads=case.heads).numpy()


# ---------------------------------------------------------------- tests


def test_every_exported_stdlib_pattern_has_a_case() -> None:
    exported = {(f.stem, name) for f in STDLIB.glob("*.sap") for name in patternc.load(f).exported}
    assert exported == {(c.file, c.name) for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("nq", [64, 13, 1])
def test_mask_matches_the_paper_at_small_n(case: Case, nq: int) -> None:
    node = load(case, **case.small)
    np.testing.assert_array_equal(actual(case, node, nq, 64), expected(case, nq, 64, **case.small))


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize(("nq", "nk"), [(1024, 1024), (100, 1000)])
def test_mask_matches_the_paper_at_the_defaults(case: Case, nq: int, nk: int) -> None:
    node = load(case)
    np.testing.assert_array_equal(actual(case, node, nq, nk), expected(case, nq, nk))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_complexity_class_is_the_papers(case: Case) -> None:
    # symbolic token lists count: BigBird-ITC's last block `n - b..n` has b tokens, whatever n
    rep = load(case).report(4096, heads=case.heads)
    assert rep.complexity == case.complexity, (
        f"{case.name}: the analysis reports {rep.complexity} (tight: {rep.complexity_tight}), "
        f"the paper {case.complexity}, for {load(case).sap()}")


def test_headers_name_paper_parameters_complexity_and_choices() -> None:
    for f in sorted(STDLIB.glob("*.sap")):
        header = "\n".join(line for line in f.read_text().splitlines() if line.startswith("#"))
        for word in ("Paper", "Parameters", "Complexity:", "Choices:"):
            assert word in header, f"{f.name} header lacks {word!r}"


def test_docs_table_lists_every_pattern_with_its_class() -> None:
    table = DOCS.read_text()
    for case in CASES:
        row = next((line for line in table.splitlines() if f"`{case.name}`" in line), None)
        assert row is not None, f"docs/stdlib.md lacks {case.name}"
        assert re.search(rf"\|\s*{re.escape(case.complexity)}\s*\|", row), row
