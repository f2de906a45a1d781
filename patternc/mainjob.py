"""`make run`: the main job. Checks and reports every standard-library pattern (later: compiles
and runs their kernels, on the GPU when there is one, else on Triton's interpreter)."""

from __future__ import annotations


def main() -> int:
    print("patternc main job: nothing to run yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
