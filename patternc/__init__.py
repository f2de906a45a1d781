"""patternc: a compiler for sparse attention patterns.

    >>> import patternc
    >>> p = patternc.pattern("band(1) | global([0])")
    >>> p.mask(4).int().tolist()
    [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1]]
"""

from __future__ import annotations

from typing import Any

from patternc.ir import Node, PatternError

__version__ = "0.1.0"
__all__ = ["Node", "PatternError", "SapError", "attention", "load", "pattern", "__version__"]

# Heavier stages load on first use, so that `import patternc` and the CLI stay quick.
_LAZY = {
    "pattern": ("patternc.frontend", "pattern"),
    "load": ("patternc.frontend", "load"),
    "SapError": ("patternc.diagnostics", "SapError"),
    "attention": ("patternc.runtime", "attention"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups find it without this hook (attention is per call)
        return value
    raise AttributeError(f"module 'patternc' has no attribute {name!r}")
