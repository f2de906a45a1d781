"""SPEC section 1 pinned by hand: every primitive's mask at a tiny size, written out as 0/1 grids.

Each grid was worked out on paper from the SPEC's table (position ``p = i + nk - nq``,
``d = p - j``, Python's floor ``//`` and ``%``), not produced by the code it checks, so the
semantics cannot drift silently. Rows are queries, columns keys.
"""

from __future__ import annotations

import pytest

import patternc

CASES: list[tuple[str, int, int, str]] = [
    # expression, nq, nk, grid
    ("full", 2, 3, "111 111"),
    ("empty", 2, 3, "000 000"),
    ("causal", 4, 4, "1000 1100 1110 1111"),
    ("causal", 2, 4, "1110 1111"),  # queries sit at the end of the keys
    ("causal", 3, 2, "00 10 11"),  # nq > nk: the first query is at position -1
    ("window(1, 0)", 4, 4, "1000 1100 0110 0011"),
    ("window(0, 2)", 4, 4, "1110 0111 0011 0001"),
    ("window(1, 0)", 2, 4, "0110 0011"),
    ("band(1)", 4, 4, "1100 1110 0111 0011"),
    ("band(w=1)", 1, 4, "0011"),
    ("band(0)", 3, 3, "100 010 001"),
    ("dilated(1, 2)", 6, 6, "101000 010100 101010 010101 001010 000101"),
    ("dilated(1, 2)", 1, 6, "000101"),
    ("dilated(2, 1)", 4, 4, "1110 1111 1111 0111"),  # r = 1 is band(w)
    ("strided(3)", 6, 6, "100100 010010 001001 100100 010010 001001"),
    ("strided(2)", 2, 5, "01010 10101"),
    ("strided(2)", 3, 2, "01 10 01"),  # (-1 - 1) % 2 == 0 under floor semantics
    ("blocks(2)", 5, 5, "11000 11000 00110 00110 00001"),
    ("blocks(2)", 3, 5, "00110 00110 00001"),
    ("blocks(2)", 3, 2, "00 11 11"),  # -1 // 2 == -1: no block shared
    ("fixed(3, 1)", 6, 6, "111001 111001 111001 001111 001111 001111"),
    ("fixed(2, 1)", 2, 4, "0111 0111"),
    ("fixed(2, 2)", 2, 2, "11 11"),  # c = l: every column is a summary column
    ("rows([1])", 3, 3, "000 111 000"),
    ("rows([0])", 2, 4, "0000 0000"),  # position 0 is not among the queries
    ("cols([0, 2])", 2, 4, "1010 1010"),
    ("cols([-1, 1..3, 9])", 1, 4, "0110"),  # entries out of range select nothing
    ("global([1])", 4, 4, "0100 1111 0100 0100"),
    ("global([0])", 2, 4, "1000 1000"),
    ("prefix(2)", 4, 4, "1100 1100 0000 0000"),
    ("prefix(3)", 2, 4, "1110 0000"),
    ("prefix(0)", 2, 2, "00 00"),
    ("random(4)", 2, 4, "1111 1111"),  # min(r, nk) distinct keys: all of them
    ("random(9, seed=3)", 1, 3, "111"),
    ("random(0)", 2, 3, "000 000"),
    ("random_blocks(2, 2)", 3, 4, "1111 1111 1111"),  # 2 of ceil(4/2) = 2 key blocks
    ("random_blocks(5, 3)", 2, 4, "1111 1111"),
    ("random_blocks(0, 2)", 2, 4, "0000 0000"),
    ("band(1) - causal", 4, 4, "0100 0010 0001 0000"),
    ("~causal", 3, 3, "011 001 000"),
    ("band(1) & causal | global([0])", 4, 4, "1111 1100 1110 1011"),
    ("strided(2) & ~band(0)", 4, 4, "0010 0001 1000 0100"),
]


def grid(text: str) -> list[list[int]]:
    return [[int(c) for c in row] for row in text.split()]


@pytest.mark.parametrize(("expr", "nq", "nk", "expected"), CASES,
                         ids=[f"{c[0]}@{c[1]}x{c[2]}" for c in CASES])
def test_mask_by_hand(expr: str, nq: int, nk: int, expected: str) -> None:
    assert patternc.pattern(expr).mask(nq, nk=nk).int().tolist() == grid(expected)


def test_heads_by_hand() -> None:
    # head h of H follows part h * k // H; heads(...) distributes over &
    m = patternc.pattern("heads(band(0), full) & causal").mask(3, heads=4).int().tolist()
    eye, tri = grid("100 010 001"), grid("100 110 111")
    assert m == [eye, eye, tri, tri]


def test_every_primitive_is_pinned() -> None:
    from patternc.ir import PRIMITIVES

    pinned = {expr.split("(")[0].lstrip("~") for expr, *_ in CASES}
    assert set(PRIMITIVES) <= pinned
