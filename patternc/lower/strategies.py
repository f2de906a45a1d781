"""Execution strategies: placeholder filled below."""

from __future__ import annotations

from dataclasses import dataclass

from patternc import ir
from patternc.lower.blocks import Geometry
from patternc.lower.rle import BlockRLE


@dataclass(frozen=True)
class Branch:
    kind: str
    group: int
    pattern: ir.Node


def branches(per_group: list[tuple[ir.Node, BlockRLE]], g: Geometry) -> tuple[Branch, ...]:
    return tuple(Branch("blocks", k, node) for k, (node, _) in enumerate(per_group))
