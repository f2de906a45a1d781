"""The ``.sap`` front end: parse, resolve and check text into IR (SPEC sections 2, 3 and 5).

``parser`` (text -> syntax tree, syntax errors), ``resolve`` (syntax tree -> IR, every other
diagnostic), ``program`` (the Python surface: ``pattern``, ``load``, ``Program``, ``PatternDef``).
"""

from patternc.frontend.program import PatternDef, Program, load, loads, pattern

__all__ = ["PatternDef", "Program", "load", "loads", "pattern"]
