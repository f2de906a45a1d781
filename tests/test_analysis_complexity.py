"""The asymptotic class of nnz, from structure and symbolic arguments, on a hand table."""

from __future__ import annotations

import pytest

from patternc import ir
from patternc.analysis.complexity import complexity
from patternc.analysis.rows import row_counts

n = ir.N()
sqrt_n = ir.Func("sqrt", (n,))
log_n = ir.Func("log2", (n,))
G16 = ir.TokenList.of(ir.Range(0, 16))

# (pattern, class, tight)
TABLE = [
    (ir.Strided(sqrt_n) & ir.Causal() | ir.Window(sqrt_n, 0), "O(n sqrt n)", True),
    (ir.Band(256), "O(n)", True),
    (ir.Causal(), "O(n^2)", True),
    (ir.Full(), "O(n^2)", True),
    (ir.Empty(), "0", True),
    (ir.Global(G16), "O(n)", True),
    (ir.Random(3), "O(n)", True),
    (ir.Random(0), "0", True),
    (ir.Blocks(sqrt_n), "O(n sqrt n)", True),
    (~ir.Band(3), "O(n^2)", True),
    (~ir.Causal(), "O(n^2)", False),            # the complement of an n^2 pattern can be anything
    (ir.Band(256) & ir.Causal(), "O(n)", True),  # a symmetric pattern keeps half under causal
    (ir.Band(256) & ir.Random(3), "O(n)", False),
    (ir.Band(256) - ir.Band(10), "O(n)", False),
    (ir.Causal() - ir.Band(4), "O(n^2)", True),
    (ir.Strided(2), "O(n^2)", True),
    (ir.Strided(n), "O(n)", True),
    (ir.Strided(log_n), "O(n^2 / log n)", True),
    (ir.Dilated(sqrt_n, 4), "O(n sqrt n)", True),
    (ir.Dilated(256, 2) | ir.Global(G16), "O(n)", True),
    (ir.Fixed(sqrt_n, 8), "O(n sqrt n)", True),
    (ir.Fixed(128, 8) & ir.Causal(), "O(n^2)", False),
    (ir.Prefix(sqrt_n), "O(n)", True),
    (ir.Prefix(ir.BinOp("//", n, 2)), "O(n^2)", True),
    (ir.Rows(ir.TokenList.of(ir.Range(0, sqrt_n))), "O(n sqrt n)", True),
    (ir.RandomBlocks(3, 64), "O(n)", True),
    (ir.RandomBlocks(2, sqrt_n), "O(n sqrt n)", True),
    (ir.Blocks(ir.BinOp("*", sqrt_n, log_n)), "O(n sqrt n log n)", True),
    (ir.Band(ir.BinOp("%", n, 7)), "O(n)", True),
    (ir.Band(ir.BinOp("-", n, n)), "O(n^2)", False),  # n - n is 0: cancellation is not tracked
    (ir.Window(ir.BinOp("//", n, 4), 0) & ir.Band(sqrt_n), "O(n sqrt n)", False),
    (ir.Heads((ir.Band(4), ir.Causal())), "O(n^2)", True),
    (ir.Band(sqrt_n) & ir.Strided(sqrt_n), "O(n)", True),               # a span over one stride
    (ir.Window(n, 0) & ir.Strided(sqrt_n) & ir.Causal(), "O(n sqrt n)", True),
    (ir.Band(ir.BinOp("//", n, 2)) & ir.Dilated(sqrt_n, 2), "O(n sqrt n)", True),
    (ir.Band(sqrt_n) & ir.Strided(2) & ir.Strided(3), "O(n sqrt n)", False),  # two strides: min rule
    ((ir.Window(sqrt_n, 0) | ir.Strided(sqrt_n)) & ir.Causal(), "O(n sqrt n)", True),  # distributed
    ((ir.Window(256, 0) | ir.Cols(ir.TokenList.of(0, 1))) & ir.Causal(), "O(n)", True),
    (ir.Cols(ir.TokenList.of(0, 1)) & ir.Causal(), "O(n)", False),
    (ir.Global(ir.TokenList.of(ir.Range(0, 64), ir.Range(ir.BinOp("-", n, 64), n))), "O(n)", True),
    (ir.Rows(ir.TokenList.of(ir.Range(ir.BinOp("//", n, 2), n))), "O(n^2)", True),
    (ir.Cols(ir.TokenList.of(ir.Range(n, ir.BinOp("+", n, 5)))), "0", True),  # beyond the keys
    (ir.Cols(ir.TokenList.of(ir.Range(-5, ir.BinOp("+", n, 5)))), "O(n^2)", True),  # clipped to n
    (ir.Band(256) | ir.Global(G16) | ir.RandomBlocks(3, 64), "O(n)", True),
]


@pytest.mark.parametrize("p,expected,tight", TABLE, ids=[str(t[0]) for t in TABLE])
def test_hand_table(p: ir.Node, expected: str, tight: bool) -> None:
    c = complexity(p)
    assert (str(c), c.tight) == (expected, tight)


@pytest.mark.parametrize("p,expected,tight", [t for t in TABLE if t[2] and "heads" not in str(t[0])],
                         ids=[str(t[0]) for t in TABLE if t[2] and "heads" not in str(t[0])])
def test_tight_classes_match_exact_counts(p: ir.Node, expected: str, tight: bool) -> None:
    # not a fit: a sanity check that the exact nnz at two lengths grows as the class says
    c = complexity(p).growth
    if not c.nonzero:
        assert row_counts(p, 4096, 4096).counts.sum() == 0
        return
    ratios = []
    for size in (1 << 10, 1 << 18):
        nnz = int(row_counts(p, size, size).counts.sum())
        model = size ** float(c.a) * (size.bit_length() - 1) ** float(c.b)
        ratios.append(nnz / model)
    assert 0.25 < ratios[1] / ratios[0] < 4  # a class off by sqrt(n) would be off by 16
