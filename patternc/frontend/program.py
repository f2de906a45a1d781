"""The Python surface of the front end: ``pattern(text)``, ``load(path)``, ``Program``, ``PatternDef``.

    >>> import patternc
    >>> print(patternc.pattern("band(w) & causal", w=4))
    band(4) & causal
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from patternc import ir
from patternc.diagnostics import Diagnostic, SapError, Source, Span
from patternc.frontend.parser import parse_expression
from patternc.frontend.resolve import BUILTINS, Def, Resolver, Unit, Value, _Abort, _Env, kind_of

BindValue = Any  # int, IntExpr, a list / range / TokenList, an ir.Node or a PatternDef


def _to_value(name: str, v: BindValue) -> Value:
    """A Python value given as a binding, as a ``.sap`` value (TypeError when it is none)."""
    if isinstance(v, PatternDef):
        return v.node
    if isinstance(v, (ir.Node, ir.IntExpr, ir.TokenList)) or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    if isinstance(v, range) and v.step == 1:
        return ir.TokenList.range(v.start, v.stop)
    if isinstance(v, (list, tuple)):
        items: list[ir.Int | ir.Range] = []
        for it in v:
            if isinstance(it, range) and it.step == 1:
                items.append(ir.Range(it.start, it.stop))
            elif isinstance(it, (ir.Range, ir.IntExpr)) or (isinstance(it, int) and not isinstance(it, bool)):
                items.append(it)
            else:
                raise TypeError(f"{name}: list items must be integers or ranges, got {type(it).__name__}")
        return ir.TokenList(tuple(items))
    raise TypeError(f"{name}: cannot use a {type(v).__name__} in a pattern "
                    "(integers, lists of integers, ranges and patterns can be bound)")


def pattern(text: str, **bindings: BindValue) -> ir.Node:
    """The pattern written in ``text`` (an expression); ``bindings`` give values to names.

    A binding may be an integer (or an ``ir.IntExpr`` in ``n``), a list or ``range`` of token
    positions, a pattern, or a ``PatternDef`` from :func:`load` (which can then be called in
    ``text``). Raises :class:`~patternc.diagnostics.SapError` on any mistake.
    """
    if not isinstance(text, str):
        raise TypeError(f"pattern() needs the text of an expression, got {type(text).__name__}")
    unit = Unit(Source("<expr>", text))
    params: dict[str, Value] = {}
    for name, v in bindings.items():
        if name == "n" or name in BUILTINS:
            raise ValueError(f"cannot bind '{name}': it is built into the language")
        if isinstance(v, PatternDef) and v.required:
            unit.imported[name] = v._def
        else:
            params[name] = _to_value(name, v)
    return _evaluate(Resolver(), unit, params)


def _evaluate(r: Resolver, unit: Unit, params: dict[str, Value]) -> ir.Node:
    """The pattern written in ``unit.source`` (an expression) in the scope of ``unit``."""
    source = unit.source
    expr = parse_expression(source)
    try:
        value = r.eval(expr, _Env(unit, params))
        if not isinstance(value, ir.Node):
            raise r.error(unit, expr.span, "SAP401", f"the expression is {kind_of(value)}, not a pattern")
    except _Abort:
        raise SapError(r.diagnostics) from None
    except RecursionError:
        raise SapError([Diagnostic.at(source, source.span_at(0, len(source.text)), "SAP104",
                                      "expression nested too deeply")]) from None
    return value


def load(path: str | os.PathLike[str]) -> Program:
    """Parse and check a ``.sap`` file (and its imports). Raises SapError listing every error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        source = Source(str(path), "")
        raise SapError([Diagnostic.at(source, source.span_at(0, 0), "SAP503",
                                      f"cannot read {path}: {getattr(e, 'strerror', None) or e}")]) from None
    return loads(text, str(path), Path(path))


def loads(text: str, name: str = "<string>", path: str | os.PathLike[str] | None = None) -> Program:
    """Like :func:`load` for ``text``; relative imports are found beside ``path`` (default: the
    current directory)."""
    r = Resolver()
    p = Path(path).resolve() if path is not None else None
    try:
        unit = r.load_text(text, name, p)
    except RecursionError:
        source = Source(name, text)
        raise SapError([Diagnostic.at(source, source.span_at(0), "SAP104",
                                      "expressions nested too deeply")]) from None
    if not r.ok:
        raise SapError(r.diagnostics)
    return Program(Path(path) if path is not None else Path(name), r, unit)


class Program:
    """A loaded ``.sap`` file: ``prog[name]`` is a pattern (a :class:`PatternDef`) or a ``let`` value."""

    def __init__(self, path: Path, resolver: Resolver, unit: Unit) -> None:
        self.path = path
        self._resolver = resolver
        self._unit = unit
        self.diagnostics: tuple[Diagnostic, ...] = tuple(resolver.diagnostics)  # warnings, if any

    def _def(self, name: str) -> Def:
        d = self._unit.lookup(name)
        if d is None:
            close = difflib.get_close_matches(name, [*self._unit.own, *self._unit.imported], n=3)
            more = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"{self.path} defines no '{name}'{more}")
        return d

    def __getitem__(self, name: str) -> PatternDef | Value:
        d = self._def(name)
        if d.is_pattern:
            return PatternDef(d, self._resolver)
        return self._resolver.value(d)

    @property
    def source(self) -> Source:
        return self._unit.source

    def name_span(self, name: str) -> Span:
        """Where ``name`` is defined in this file (for diagnostics about it)."""
        return self._def(name).decl.name_span

    def expression(self, text: str) -> ir.Node:
        """The pattern written in ``text``, evaluated with this file's definitions and imports in
        scope: ``prog.expression("longformer(w=128) & causal")``."""
        names = {**self._unit.imported, **self._unit.own}
        scope = Unit(Source("<expr>", text), self._unit.path, imported=names)
        return _evaluate(Resolver(), scope, {})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._unit.lookup(name) is not None

    @property
    def patterns(self) -> dict[str, PatternDef]:
        """The patterns defined in this file (not the imported ones), in file order."""
        return {k: PatternDef(d, self._resolver) for k, d in self._unit.own.items() if d.is_pattern}

    @property
    def exported(self) -> dict[str, ir.Node]:
        """Patterns of this file whose parameters all have defaults, bound to them, in file order."""
        return {k: p.node for k, p in self.patterns.items() if not p.required}

    def __iter__(self) -> Iterator[str]:
        return iter(self.patterns)

    def __repr__(self) -> str:
        return f"Program({str(self.path)!r}, patterns={list(self.patterns)})"


class PatternDef:
    """A ``pattern`` definition: call it with arguments to bind parameters.

    When every parameter has a default it also behaves like the pattern bound to them:
    ``.node``, ``.mask``, ``.report``, ``.plan``, ``.to_flex`` and the operators.
    """

    def __init__(self, d: Def, resolver: Resolver) -> None:
        self._def = d
        self._resolver = resolver

    @property
    def name(self) -> str:
        return self._def.name

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._def.params)

    @property
    def required(self) -> tuple[str, ...]:
        return self._def.required

    @property
    def defaults(self) -> Mapping[str, Value]:
        return dict(Resolver().defaults_of(self._def))

    def __call__(self, *args: BindValue, **kwargs: BindValue) -> ir.Node:
        names = self.params
        if len(args) > len(names):
            raise TypeError(f"{self.name} takes {len(names)} arguments ({', '.join(names)}), got {len(args)}")
        bound = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"{self.name} has no parameter '{k}' (it has: {', '.join(names) or 'none'})")
            if k in bound:
                raise TypeError(f"{self.name} got parameter '{k}' twice")
            bound[k] = v
        missing = [p for p in self.required if p not in bound]
        if missing:
            raise TypeError(f"{self.name} needs {', '.join(missing)}")
        values = {k: _to_value(k, v) for k, v in bound.items()}
        r = Resolver()  # a fresh one: diagnostics of this call only
        try:
            if not values:
                v = r.value(self._def)  # cached in the file's unit
                assert isinstance(v, ir.Node)
                return v
            where = "from Python" if values else None
            return r.call(self._def, values, _Env(self._def.unit, {}), where)
        except _Abort:
            raise SapError(r.diagnostics) from None

    @property
    def node(self) -> ir.Node:
        """The pattern with every parameter at its default."""
        if self.required:
            raise ir.PatternError(f"{self.name} needs arguments: {self._def.signature()}")
        return self()

    def sap(self, prec: int = 0) -> str:
        return self.node.sap(prec)

    def __str__(self) -> str:
        return self.sap() if not self.required else self._def.signature()

    def __repr__(self) -> str:
        return f"<pattern {self._def.signature()}>"

    def mask(self, n: int, nk: int | None = None, heads: int | None = None) -> Any:
        return self.node.mask(n, nk=nk, heads=heads)

    def report(self, n: int, **kwargs: Any) -> Any:
        return self.node.report(n, **kwargs)

    def plan(self, nq: int, nk: int | None = None, **kwargs: Any) -> Any:
        return self.node.plan(nq, nk, **kwargs)

    def to_flex(self, nq: int, nk: int | None = None, **kwargs: Any) -> Any:
        return self.node.to_flex(nq, nk, **kwargs)

    def __or__(self, other: ir.Node | PatternDef) -> ir.Node:
        return self.node | _node(other)

    def __ror__(self, other: ir.Node) -> ir.Node:
        return _node(other) | self.node

    def __and__(self, other: ir.Node | PatternDef) -> ir.Node:
        return self.node & _node(other)

    def __rand__(self, other: ir.Node) -> ir.Node:
        return _node(other) & self.node

    def __sub__(self, other: ir.Node | PatternDef) -> ir.Node:
        return self.node - _node(other)

    def __rsub__(self, other: ir.Node) -> ir.Node:
        return _node(other) - self.node

    def __invert__(self) -> ir.Node:
        return ~self.node


def _node(x: object) -> ir.Node:
    if isinstance(x, PatternDef):
        return x.node
    if isinstance(x, ir.Node):
        return x
    raise TypeError(f"cannot combine a pattern with {type(x).__name__}")


__all__ = ["PatternDef", "Program", "load", "loads", "pattern"]
