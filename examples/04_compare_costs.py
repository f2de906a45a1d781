"""Example 4: compare what standard-library patterns cost, in one text table and one HTML page.

    python examples/04_compare_costs.py            # n = 4k .. 256k tokens
    python examples/04_compare_costs.py --small    # two small n (CI)

The counts are exact and computed analytically (no n x n array), so a million tokens takes
seconds for most patterns (strided ones, which touch every block, take longer). The same from the
command line, for one file:

    patternc report stdlib_patterns/bigbird.sap --n 4096,65536,1048576 --html bigbird.html
"""

from __future__ import annotations

from pathlib import Path

from _common import parser

import patternc
from patternc.analysis import render_reports
from patternc.html import write_html

STDLIB = Path(patternc.__file__).parent / "stdlib_patterns"
PATTERNS = [  # (file, pattern)
    ("dense", "dense_causal"),
    ("sliding_window", "sliding_window"),
    ("longformer", "longformer"),
    ("bigbird", "bigbird_itc"),
    ("sparse_transformer", "sparse_transformer_strided"),
    ("sparse_transformer", "sparse_transformer_fixed"),
    ("streaming_llm", "streaming_llm"),
]


def main() -> int:
    args = parser(__doc__ or "").parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = PATTERNS[:3] + PATTERNS[4:5] if args.small else PATTERNS
    ns = [512, 2048] if args.small else [4096, 16384, 65536, 262144]
    items = [(name, patternc.load(STDLIB / f"{file}.sap").exported[name]) for file, name in chosen]
    rows = [(name, node.report(n)) for n in (ns[0], ns[-1]) for name, node in items]
    print(render_reports(rows))
    page = write_html(args.out / "compare_costs.html", items, ns, block=64 if args.small else 128,
                      title="standard-library patterns compared")
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
