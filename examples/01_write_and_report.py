"""Example 1: write a `.sap` file, check it, and report what the pattern costs.

    python examples/01_write_and_report.py            # report up to 64k tokens, HTML page
    python examples/01_write_and_report.py --small    # tiny sizes (CI)

The same from the command line:

    patternc check  my_pattern.sap
    patternc report my_pattern.sap --n 4096,16384,65536
    patternc report my_pattern.sap --n 4096,16384,65536 --html report.html
"""

from __future__ import annotations

from _common import parser

import patternc
from patternc.analysis import render_reports
from patternc.html import write_html

SOURCE = """\
# A local window with a few global tokens, and the standard library's Longformer with
# BigBird-style random blocks on top.
import longformer                   # a bare name is a file of stdlib_patterns/

let g = [0..4]                      # the first four tokens are global

pattern local_global(w = 128) = band(w) | global(g)
pattern longformer_random(r = 2) = longformer(w = 256, g = g) | random_blocks(r, 64, seed = 1)
"""


def main() -> int:
    args = parser(__doc__ or "").parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "my_pattern.sap"
    path.write_text(SOURCE)

    prog = patternc.load(path)  # raises patternc.SapError (with diagnostics) on a bad file
    print(f"{path}: exports {', '.join(prog.exported)}")
    ns = [256, 1024] if args.small else [4096, 16384, 65536]
    rows = []
    for name in prog.exported:
        node = prog[name]()
        print(f"  {name} = {node.sap()}")
        rows += [(name, node.report(n)) for n in ns]
    print(render_reports(rows))

    page = write_html(args.out / "my_pattern.html", [(name, prog[name]()) for name in prog.exported], ns,
                      block=64 if args.small else 128)
    print(f"wrote {page} (open it in a browser)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
