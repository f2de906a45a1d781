"""The patterns every benchmark measures: DESIGN.md's anchor table, as IR (keys are their .sap text)."""

from __future__ import annotations

from patternc import ir

G16 = ir.TokenList.of(ir.Range(0, 16))
PATTERNS: dict[str, ir.Node] = {
    "band(256)": ir.Band(256),
    "causal": ir.Causal(),
    "band(256) | global([0..16])": ir.Band(256) | ir.Global(G16),
    "band(256) | global([0..16]) | random_blocks(3, 64)":
        ir.Band(256) | ir.Global(G16) | ir.RandomBlocks(3, 64),
    "dilated(256, 2) | global([0..16])": ir.Dilated(256, 2) | ir.Global(G16),
    "(window(127, 0) | strided(128)) & causal": (ir.Window(127, 0) | ir.Strided(128)) & ir.Causal(),
}
