"""Syntax tree to IR: imports, names, parameters, integer evaluation, type and range checks.

Every mistake becomes a :class:`~patternc.diagnostics.Diagnostic`. An error aborts only the
definition it is in (``_Abort`` unwinds to it); the other definitions are still checked, and a
reference to a definition that failed is silent, so one mistake is reported once.

Values are ``int`` or :class:`ir.IntExpr` (integers, symbolic in ``n``), :class:`ir.TokenList`
(lists) and :class:`ir.Node` (patterns). Constant integer sub-expressions fold to ``int``.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from patternc import ir
from patternc.diagnostics import Diagnostic, Source, Span
from patternc.frontend import ast
from patternc.frontend.parser import parse_module

Value = int | ir.IntExpr | ir.TokenList | ir.Node

INT_LIMIT = 2**63  # integers are 64-bit, as in the kernels' index arithmetic
INT_FUNCS = {"sqrt": (1, 1), "log2": (1, 1), "min": (2, 99), "max": (2, 99)}
BUILTINS = frozenset(ir.PRIMITIVES) | {"heads"} | frozenset(INT_FUNCS)


class _Abort(Exception):
    """An error has been reported; unwind to the enclosing definition."""


def kind_of(v: object) -> str:
    if isinstance(v, (int, ir.IntExpr)):
        return "an integer"
    if isinstance(v, ir.TokenList):
        return "a list"
    return "a pattern"


def stdlib_dir() -> Path:
    return Path(str(resources.files("patternc").joinpath("stdlib_patterns")))


def stdlib_names() -> list[str]:
    return sorted(p.stem for p in stdlib_dir().glob("*.sap"))


def _did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


# --------------------------------------------------------------------------- definitions and files


@dataclass(eq=False)
class Def:
    """A top-level ``let`` or ``pattern`` of some file."""

    decl: ast.Let | ast.PatternDecl
    unit: Unit

    @property
    def name(self) -> str:
        return self.decl.name

    @property
    def is_pattern(self) -> bool:
        return isinstance(self.decl, ast.PatternDecl)

    @property
    def params(self) -> tuple[ast.Param, ...]:
        return self.decl.params if isinstance(self.decl, ast.PatternDecl) else ()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.default is None)

    def signature(self) -> str:
        ps = [p.name if p.default is None else f"{p.name}=..." for p in self.params]
        return f"{self.name}({', '.join(ps)})"


@dataclass(eq=False)
class Unit:
    """One file (or ``<expr>``) being resolved: its own names and those it imports."""

    source: Source
    path: Path | None = None
    own: dict[str, Def] = field(default_factory=dict)
    imported: dict[str, Def] = field(default_factory=dict)
    broken: frozenset[str] = frozenset()  # defined by statements that did not parse
    failed: set[Def] = field(default_factory=set)
    values: dict[Def, Value] = field(default_factory=dict)
    defaults: dict[Def, dict[str, Value]] = field(default_factory=dict)

    def lookup(self, name: str) -> Def | None:
        return self.own.get(name) or self.imported.get(name)


@dataclass(frozen=True)
class _Env:
    """Where an expression is evaluated: its file, the bound parameters, and the call chain."""

    unit: Unit
    params: dict[str, Value]
    notes: tuple[str, ...] = ()


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# friendlier messages and hints for the argument ranges that ir.argument_errors checks
_RANGE_TEXT: dict[tuple[str, str], tuple[str, str | None]] = {
    ("window", "left"): ("window: left must be >= 0, got {v}",
                         "window(left, right) keeps -right <= d <= left"),
    ("window", "right"): ("window: right must be >= 0, got {v}", "window(left, 0) looks only at the past"),
    ("band", "w"): ("band width must be >= 0, got {v}", "band(0) is the diagonal"),
    ("dilated", "w"): ("dilated: w must be >= 0, got {v}", None),
    ("dilated", "r"): ("dilation must be >= 1, got {v}", "dilated(w, 1) is band(w)"),
    ("strided", "s"): ("stride must be >= 1, got {v}", "strided(1) is full"),
    ("blocks", "b"): ("block size must be >= 1, got {v}", None),
    ("fixed", "l"): ("fixed: block length l must be >= 1, got {v}", None),
    ("fixed", "c"): ("fixed: c must be >= 1, got {v}", "fixed needs 1 <= c <= l"),
    ("prefix", "m"): ("prefix length must be >= 0, got {v}", None),
    ("random", "r"): ("random: r must be >= 0, got {v}", None),
    ("random_blocks", "r"): ("random_blocks: r must be >= 0, got {v}", None),
    ("random_blocks", "b"): ("random_blocks: block size b must be >= 1, got {v}", None),
}
_IR_RANGE = re.compile(r"^(\w+): (\w+) must be >= -?\d+, got (-?\d+)$")


def _range_text(node: ir.Node, message: str) -> tuple[str, str | None]:
    m = _IR_RANGE.match(message)
    if m and (m.group(1), m.group(2)) in _RANGE_TEXT:
        text, hint = _RANGE_TEXT[m.group(1), m.group(2)]
        return text.format(v=m.group(3)), hint
    if isinstance(node, ir.Fixed) and "c must be <= l" in message:
        return f"fixed needs c <= l, got c={node.c} > l={node.l}", "fixed(l, l) already keeps every key"
    return message, None


# --------------------------------------------------------------------------- the resolver


class Resolver:
    """Resolves files and expressions; collects diagnostics (``.diagnostics``)."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[object, ...]] = set()
        self.units: dict[Path, Unit] = {}
        self._loading: list[Path] = []
        self._calls: dict[tuple[object, ...], ir.Node | None] = {}
        self._active: list[Def] = []

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def error(self, env: _Env | Unit, span: Span, code: str, message: str, hint: str | None = None) -> _Abort:
        """Record a diagnostic (once) and return the exception that unwinds the definition."""
        unit, notes = (env, ()) if isinstance(env, Unit) else (env.unit, env.notes)
        d = Diagnostic.at(unit.source, span, code, message, hint, notes=notes)
        key = (d.file, span.start, span.end, code, message)
        if key not in self._seen:
            self._seen.add(key)
            self.diagnostics.append(d)
        return _Abort()

    # ------------------------------------------------------------------ files and imports

    def load_file(self, path: Path, display: str | None = None) -> Unit:
        """Parse, declare and check a file (and, first, what it imports)."""
        path = path.resolve()
        if path in self.units:
            return self.units[path]
        text = path.read_text(encoding="utf-8")
        return self.load_text(text, display or _display(path), path)

    def load_text(self, text: str, name: str, path: Path | None = None) -> Unit:
        unit = Unit(Source(name, text), path)
        if path is not None:
            self.units[path] = unit
            self._loading.append(path)
        parsed = parse_module(unit.source)
        for d in parsed.errors:
            self.error(unit, d.span, d.code, d.message, d.hint)
        unit.broken = parsed.broken
        try:
            for stmt in parsed.module.stmts:
                if isinstance(stmt, ast.Import):
                    self._import(unit, stmt)
            for stmt in parsed.module.stmts:
                if not isinstance(stmt, ast.Import):
                    self._declare(unit, stmt)
        finally:
            if path is not None:
                self._loading.pop()
        self._check_cycles(unit)
        self._check_all(unit)
        return unit

    def _import(self, unit: Unit, stmt: ast.Import) -> None:
        target = self._find_import(unit, stmt)
        if target is None:
            return
        if target in self._loading:
            chain = [*self._loading[self._loading.index(target):], target]
            self.error(unit, stmt.span, "SAP502", "import cycle: " + " -> ".join(p.name for p in chain),
                       "move what both files need into a third file that both import")
            return
        try:
            imported = self.load_file(target)
        except (OSError, UnicodeDecodeError) as e:
            self.error(unit, stmt.span, "SAP503", f"cannot read '{stmt.target}': {e}")
            return
        for name, d in imported.own.items():
            other = unit.imported.get(name)
            if other is not None and other is not d:
                both = f"{other.unit.source.name} and {d.unit.source.name}"
                self.error(unit, stmt.span, "SAP302", f"'{name}' is imported from both {both}")
                continue
            unit.imported[name] = d

    def _find_import(self, unit: Unit, stmt: ast.Import) -> Path | None:
        try:
            return self._find_import_path(unit, stmt)
        except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte, ...
            self.error(unit, stmt.span, "SAP501", f"cannot find '{stmt.target}': {e}")
            return None

    def _find_import_path(self, unit: Unit, stmt: ast.Import) -> Path | None:
        if stmt.is_path:
            base = unit.path.parent if unit.path is not None else Path.cwd()
            target = base / stmt.target
            if target.is_file():
                return target.resolve()
            near = sorted(str(p.relative_to(base)) for p in base.glob("*.sap")) if base.is_dir() else []
            self.error(unit, stmt.span, "SAP501", f"cannot find '{stmt.target}' (looked in {base})",
                       _did_you_mean(stmt.target, near) or "paths are relative to the importing file")
            return None
        target = stdlib_dir() / f"{stmt.target}.sap"
        if target.is_file():
            return target.resolve()
        names = stdlib_names()
        hint = _did_you_mean(stmt.target, names) or (
            f"a bare name is a file of the standard library: {', '.join(names)}; "
            'for a file of your own write import "path/to/file.sap"')
        self.error(unit, stmt.span, "SAP501", f"no standard pattern file '{stmt.target}'", hint)
        return None

    # ------------------------------------------------------------------ declarations

    def _check_name(self, unit: Unit, name: str, span: Span, what: str) -> bool:
        if name == "n":
            self.error(unit, span, "SAP304", f"'n' is the key length and cannot be used as a {what} name")
            return False
        if name in BUILTINS:
            self.error(unit, span, "SAP304", f"'{name}' is a built-in and cannot be redefined",
                       f"choose another name, e.g. 'my_{name}'")
            return False
        if what in ("pattern", "parameter") and keyword.iskeyword(name):
            self.error(unit, span, "SAP305", f"{what} name '{name}' is a Python keyword, not an identifier",
                       "compiled patterns become Python functions; choose another name")
            return False
        return True

    def _declare(self, unit: Unit, stmt: ast.Let | ast.PatternDecl) -> None:
        what = "pattern" if isinstance(stmt, ast.PatternDecl) else "let"
        ok = self._check_name(unit, stmt.name, stmt.name_span, what)
        if stmt.name == "n" or stmt.name in BUILTINS:
            return  # not registered: references keep meaning the built-in
        if isinstance(stmt, ast.PatternDecl):
            seen: set[str] = set()
            for p in stmt.params:
                if p.name in seen:
                    ok = False
                    self.error(unit, p.span, "SAP302", f"parameter '{p.name}' is listed twice")
                seen.add(p.name)
                ok = self._check_name(unit, p.name, p.span, "parameter") and ok
        first = unit.own.get(stmt.name)
        if first is not None:
            self.error(unit, stmt.name_span, "SAP302",
                       f"'{stmt.name}' is already defined at line {first.decl.name_span.line}",
                       "a name is defined once per file")
            return
        if stmt.name in unit.imported:
            src = unit.imported[stmt.name].unit.source.name
            self.error(unit, stmt.name_span, "SAP302", f"'{stmt.name}' is already imported from {src}",
                       "rename the definition, or drop the import")
            return
        d = Def(stmt, unit)
        unit.own[stmt.name] = d
        if not ok:
            unit.failed.add(d)

    def _check_cycles(self, unit: Unit) -> None:
        """Report every cycle of references between the file's own definitions, once."""
        graph = {d: [(unit.own[name], span) for name, span in _references(d) if name in unit.own]
                 for d in unit.own.values()}
        reported: set[Def] = set()
        for start in unit.own.values():
            cycle = _find_cycle(start, graph)
            if cycle is None or reported & set(cycle):
                continue
            reported |= set(cycle)
            unit.failed |= set(cycle)
            first = cycle[0]
            span = next(s for d, s in graph[first] if d is (cycle[1] if len(cycle) > 1 else first))
            path = " -> ".join(d.name for d in [*cycle, first])
            what = "refers to itself" + (f" through {path}" if len(cycle) > 1 else "")
            self.error(unit, span, "SAP303", f"'{first.name}' {what}",
                       "patterns cannot be recursive: a pattern is a fixed set of (query, key) pairs")

    def _check_all(self, unit: Unit) -> None:
        for d in list(unit.own.values()):
            if d in unit.failed:
                continue
            try:
                if d.required:
                    self.defaults_of(d)
                    self._check_names(d)
                else:
                    self.value(d)
            except _Abort:
                unit.failed.add(d)

    def _check_names(self, d: Def) -> None:
        """The names of a body that cannot be evaluated yet (it has parameters without defaults)."""
        assert isinstance(d.decl, ast.PatternDecl)
        params = {p.name for p in d.params}
        env = _Env(d.unit, {})
        failed = False
        for x in _walk(d.decl.body):
            if isinstance(x, ast.Call) and (x.func in params or (
                    (c := d.unit.lookup(x.func)) is not None and not c.is_pattern)):
                failed = True
                what = "a parameter" if x.func in params else "a let"
                message = f"'{x.func}' is {what}, not a pattern; it cannot be called"
                self.error(env, x.func_span, "SAP406", message)
        for name, span in _names(d.decl.body):
            known = name in params or name == "n" or name in BUILTINS or name in d.unit.broken
            if known or d.unit.lookup(name):
                continue
            failed = True
            self.error(env, span, "SAP301", f"'{name}' is not defined",
                       _did_you_mean(name, [*params, *self._visible(d.unit)]))
        if failed:
            raise _Abort()

    def _visible(self, unit: Unit) -> list[str]:
        return [*unit.own, *unit.imported, *BUILTINS, "n"]

    # ------------------------------------------------------------------ values of definitions

    def value(self, d: Def) -> Value:
        """The value of a ``let``, or of a pattern bound to its defaults."""
        unit = d.unit
        if d in unit.failed:
            raise _Abort()
        if d in unit.values:
            return unit.values[d]
        if d in self._active:  # unreachable after _check_cycles; a guard against looping
            raise self.error(unit, d.decl.name_span, "SAP303", f"'{d.name}' refers to itself")
        self._active.append(d)
        try:
            if isinstance(d.decl, ast.Let):
                v = self.eval(d.decl.value, _Env(unit, {}))
            else:
                v = self.call(d, {}, _Env(unit, {}))
        except _Abort:
            unit.failed.add(d)
            raise
        finally:
            self._active.pop()
        unit.values[d] = v
        return v

    def defaults_of(self, d: Def) -> dict[str, Value]:
        """The default values of a pattern's parameters (evaluated once, in its file)."""
        if d in d.unit.defaults:
            return d.unit.defaults[d]
        env = _Env(d.unit, {})
        out: dict[str, Value] = {}
        failed = False
        for p in d.params:
            if p.default is not None:
                try:
                    out[p.name] = self.eval(p.default, env)
                except _Abort:
                    failed = True
        if failed:
            d.unit.failed.add(d)
            raise _Abort()
        d.unit.defaults[d] = out
        return out

    def call(self, d: Def, args: dict[str, Value], env: _Env, where: str | None = None) -> ir.Node:
        """Pattern ``d`` with ``args`` bound (the rest from defaults): its body as IR."""
        assert isinstance(d.decl, ast.PatternDecl)
        bound = {**self.defaults_of(d), **args}
        key = (id(d), tuple(sorted(bound.items(), key=lambda kv: kv[0])))
        if key in self._calls:
            cached = self._calls[key]
            if cached is None:
                raise _Abort()
            return cached
        notes = env.notes + ((f"in {d.name}({_show_args(args)}) called {where}",) if where else ())
        body_env = _Env(d.unit, bound, notes)
        self._calls[key] = None
        v = self.eval(d.decl.body, body_env)
        if not isinstance(v, ir.Node):
            raise self.error(body_env, d.decl.body.span, "SAP401",
                             f"pattern '{d.name}' is {kind_of(v)}, not a pattern",
                             "use `let` to name integers and lists")
        self._calls[key] = v
        return v

    # ------------------------------------------------------------------ expressions

    def eval(self, e: ast.Expr, env: _Env) -> Value:
        if isinstance(e, ast.IntLit):
            if e.value is None or not -INT_LIMIT < e.value < INT_LIMIT:
                raise self.error(env, e.span, "SAP206", "integer too large (the limit is 2**63 - 1)")
            return e.value
        if isinstance(e, ast.Name):
            return self._name(e, env)
        if isinstance(e, ast.Call):
            return self._call(e, env)
        if isinstance(e, ast.ListExpr):
            return self._list(e, env)
        if isinstance(e, ast.BinExpr):
            return self._binary(e, env)
        return self._unary(e, env)

    def _all(self, exprs: Iterable[ast.Expr], env: _Env) -> list[Value]:
        """Evaluate every expression, reporting every error before giving up."""
        out: list[Value] = []
        failed = False
        for x in exprs:
            try:
                out.append(self.eval(x, env))
            except _Abort:
                failed = True
        if failed:
            raise _Abort()
        return out

    def _name(self, e: ast.Name, env: _Env) -> Value:
        if e.id in env.params:
            return env.params[e.id]
        if e.id == "n":
            return ir.N()
        d = env.unit.lookup(e.id)
        if d is not None:
            if d.required:
                raise self.error(env, e.span, "SAP407", f"pattern '{e.id}' needs arguments: {d.signature()}")
            return self.value(d)
        if e.id in ir.PRIMITIVES:
            cls = ir.PRIMITIVES[e.id]
            if not fields(cls):
                return cls()
            names = ", ".join(f.name for f in fields(cls) if f.name != "seed")
            raise self.error(env, e.span, "SAP407", f"'{e.id}' needs arguments: {e.id}({names})")
        if e.id in BUILTINS:
            raise self.error(env, e.span, "SAP407", f"'{e.id}' is a function: write {e.id}(...)")
        if e.id in env.unit.broken:
            raise _Abort()
        raise self.error(env, e.span, "SAP301", f"'{e.id}' is not defined",
                         _did_you_mean(e.id, [*env.params, *self._visible(env.unit)]))

    def _call(self, e: ast.Call, env: _Env) -> Value:
        if e.misplaced:
            raise self.error(env, e.misplaced[0].span, "SAP106",
                             "positional argument after a keyword argument",
                             "write positional arguments first: random(3, seed=7)")
        if e.func in env.params:
            what = kind_of(env.params[e.func])
            message = f"'{e.func}' is a parameter ({what}) and cannot be called"
            raise self.error(env, e.func_span, "SAP406", message)
        d = env.unit.lookup(e.func)
        if d is not None:
            if not d.is_pattern:
                raise self.error(env, e.func_span, "SAP406",
                                 f"'{e.func}' is a let, not a pattern with parameters; it cannot be called",
                                 f"write {e.func} without parentheses")
            return self._call_user(d, e, env)
        if e.func in INT_FUNCS:
            return self._int_func(e, env)
        if e.func == "heads":
            return self._heads(e, env)
        if e.func in ir.PRIMITIVES:
            return self._primitive(e, env)
        if e.func in env.unit.broken:
            raise _Abort()
        defined = {**env.unit.imported, **env.unit.own}
        callables = [*ir.PRIMITIVES, "heads", *INT_FUNCS, *(k for k, v in defined.items() if v.is_pattern)]
        raise self.error(env, e.func_span, "SAP301", f"'{e.func}' is not defined",
                         _did_you_mean(e.func, callables))

    def _bind(self, e: ast.Call, names: list[str], env: _Env, required: Iterable[str]) -> dict[str, ast.Expr]:
        """Match a call's arguments to parameter ``names`` (arity and keyword errors)."""
        if len(e.args) > len(names):
            takes = f"{len(names)} argument{'s' * (len(names) != 1)}"
            raise self.error(env, e.args[len(names)].span, "SAP402",
                             f"{e.func} takes {takes} ({', '.join(names)}), got {len(e.args)}")
        out = dict(zip(names, e.args))
        failed = False
        for kw in e.kwargs:
            if kw.name not in names:
                failed = True
                takes = ", ".join(names) or "no arguments"
                hint = _did_you_mean(kw.name, names) or f"{e.func} takes: {takes}"
                self.error(env, kw.span, "SAP403", f"{e.func} has no argument '{kw.name}'", hint)
            elif kw.name in out:
                failed = True
                self.error(env, kw.span, "SAP404", f"argument '{kw.name}' of {e.func} is given twice")
            else:
                out[kw.name] = kw.value
        missing = [r for r in required if r not in out]
        if missing and not failed:
            failed = True
            self.error(env, e.span, "SAP405", f"{e.func} needs argument{'s' * (len(missing) > 1)} "
                       + ", ".join(f"'{m}'" for m in missing), f"{e.func}({', '.join(names)})")
        if failed:
            raise _Abort()
        return out

    def _call_user(self, d: Def, e: ast.Call, env: _Env) -> ir.Node:
        names = [p.name for p in d.params]
        exprs = self._bind(e, names, env, d.required)
        values = self._all(exprs.values(), env)
        args = dict(zip(exprs, values))
        where = f"at {env.unit.source.name}:{e.span.line}:{e.span.col - 1}"
        return self.call(d, args, env, where if args else None)

    def _primitive(self, e: ast.Call, env: _Env) -> ir.Node:
        cls = ir.PRIMITIVES[e.func]
        fs = fields(cls)
        exprs = self._bind(e, [f.name for f in fs], env, [f.name for f in fs if f.name != "seed"])
        values = dict(zip(exprs, self._all(exprs.values(), env)))
        failed = False
        for name, v in values.items():
            want_list = name == "tokens"
            if want_list != isinstance(v, ir.TokenList) or isinstance(v, ir.Node):
                failed = True
                want = "a list" if want_list else "an integer"
                single = want_list and isinstance(v, int)
                hint = f"write [{int_text(v)}] for a single token" if single else None
                self.error(env, exprs[name].span, "SAP401",
                           f"{e.func} needs {want} for '{name}', got {kind_of(v)}", hint)
        if failed:
            raise _Abort()
        node = cls(**values)
        errors = ir.argument_errors(node)
        for message in errors:
            text, hint = _range_text(node, message)
            self.error(env, e.span, "SAP202" if "<=" in message else "SAP201", text, hint)
        if errors:
            raise _Abort()
        return node

    def _heads(self, e: ast.Call, env: _Env) -> ir.Node:
        if e.kwargs:
            raise self.error(env, e.kwargs[0].span, "SAP403", "heads takes no keyword arguments",
                             "heads(P0, P1, ...): head h of H follows P[h * k // H]")
        if not e.args:
            raise self.error(env, e.span, "SAP402", "heads needs at least one pattern")
        parts = self._all(e.args, env)
        bad = [(x, v) for x, v in zip(e.args, parts) if not isinstance(v, ir.Node)]
        for x, v in bad:
            self.error(env, x.span, "SAP401", f"heads needs patterns, got {kind_of(v)}")
        if bad:
            raise _Abort()
        return ir.Heads(tuple(p for p in parts if isinstance(p, ir.Node)))

    def _int_func(self, e: ast.Call, env: _Env) -> ir.Int:
        lo, hi = INT_FUNCS[e.func]
        if e.kwargs:
            raise self.error(env, e.kwargs[0].span, "SAP403", f"{e.func} takes no keyword arguments")
        if not lo <= len(e.args) <= hi:
            want = f"{lo} argument{'s' * (lo > 1)}" if lo == hi else f"at least {lo} arguments"
            raise self.error(env, e.span, "SAP402", f"{e.func} takes {want}, got {len(e.args)}")
        xs = [self._int(x, v, env, e.func) for x, v in zip(e.args, self._all(e.args, env))]
        if not all(isinstance(x, int) for x in xs):
            return ir.Func(e.func, tuple(xs))
        ints = [int(x) for x in xs]
        if e.func == "sqrt":
            if ints[0] < 0:
                raise self.error(env, e.span, "SAP205", f"sqrt of a negative number ({ints[0]})")
            return math.isqrt(ints[0])
        if e.func == "log2":
            if ints[0] < 1:
                raise self.error(env, e.span, "SAP204", f"log2 needs x >= 1, got {ints[0]}")
            return ints[0].bit_length() - 1
        return min(ints) if e.func == "min" else max(ints)

    def _int(self, x: ast.Expr, v: Value, env: _Env, where: str) -> ir.Int:
        if isinstance(v, (int, ir.IntExpr)):
            return v
        raise self.error(env, x.span, "SAP401", f"{where} needs an integer, got {kind_of(v)}")

    def _list(self, e: ast.ListExpr, env: _Env) -> ir.TokenList:
        items: list[ir.Int | ir.Range] = []
        failed = False
        for it in e.items:
            try:
                if isinstance(it, ast.RangeItem):
                    a, b = self._all([it.start, it.stop], env)
                    items.append(ir.Range(self._int(it.start, a, env, "a range"),
                                          self._int(it.stop, b, env, "a range")))
                else:
                    items.append(self._int(it, self.eval(it, env), env, "a list item"))
            except _Abort:
                failed = True
        if failed:
            raise _Abort()
        return ir.TokenList(tuple(items))

    def _binary(self, e: ast.BinExpr, env: _Env) -> Value:
        a, b = self._all([e.left, e.right], env)
        if e.op == "/":
            raise self.error(env, _operator_span(env.unit.source, e), "SAP105",
                             "'/' is not an operator of .sap",
                             "integers divide with // (floor division), as in n // 4")
        if e.op in "|&" or (e.op == "-" and isinstance(a, ir.Node) and isinstance(b, ir.Node)):
            for x, v in ((e.left, a), (e.right, b)):
                if not isinstance(v, ir.Node):
                    hint = {"|": "for integers use max(a, b)", "&": "for integers use min(a, b)"}.get(e.op)
                    message = f"'{e.op}' needs patterns, got {kind_of(v)}"
                    raise self.error(env, x.span, "SAP401", message, hint)
            assert isinstance(a, ir.Node) and isinstance(b, ir.Node)
            return a | b if e.op == "|" else a & b if e.op == "&" else a - b
        if e.op == "-" and (isinstance(a, ir.Node) or isinstance(b, ir.Node)):
            # one side is a pattern: the other one is the odd one out
            x, v = (e.right, b) if isinstance(a, ir.Node) else (e.left, a)
            raise self.error(env, x.span, "SAP401", f"'-' of patterns needs a pattern here, got {kind_of(v)}",
                             "A - B keeps the pairs of pattern A that are not in pattern B")
        hints = {"+": "for the union of patterns use |", "*": "for the intersection of patterns use &"}
        for x, v in ((e.left, a), (e.right, b)):
            if not isinstance(v, (int, ir.IntExpr)):
                raise self.error(env, x.span, "SAP401", f"'{e.op}' needs integers, got {kind_of(v)}",
                                 hints.get(e.op))
        assert isinstance(a, (int, ir.IntExpr)) and isinstance(b, (int, ir.IntExpr))
        if e.op in ("//", "%") and isinstance(b, int) and b == 0:
            raise self.error(env, e.right.span, "SAP203", f"division by zero in '{e.op}'")
        if not (isinstance(a, int) and isinstance(b, int)):
            return ir.BinOp(e.op, a, b)
        v = ir.BinOp(e.op, a, b).eval(0)
        if not -INT_LIMIT < v < INT_LIMIT:
            raise self.error(env, e.span, "SAP206", f"integer too large: {e.op} gives more than 63 bits")
        return v

    def _unary(self, e: ast.UnaryExpr, env: _Env) -> Value:
        v = self.eval(e.operand, env)
        if e.op == "~":
            if not isinstance(v, ir.Node):
                raise self.error(env, e.operand.span, "SAP401", f"'~' needs a pattern, got {kind_of(v)}",
                                 "~ is the complement of a pattern; integers negate with -")
            return ~v
        if isinstance(v, ir.Node):
            raise self.error(env, e.operand.span, "SAP401", "'-' needs an integer, got a pattern",
                             "the complement of a pattern is ~p")
        if isinstance(v, ir.TokenList):
            raise self.error(env, e.operand.span, "SAP401", "'-' needs an integer, got a list")
        return -v if isinstance(v, int) else ir.Neg(v)


# --------------------------------------------------------------------------- helpers


def int_text(v: Value) -> str:
    return ir.int_sap(v) if isinstance(v, (int, ir.IntExpr)) else str(v)


def _operator_span(source: Source, e: ast.BinExpr) -> Span:
    """The span of the operator itself (between the operands, past spaces and parentheses)."""
    gap = source.text[e.op_span.start:e.op_span.end]
    k = gap.find(e.op)
    return source.span_at(e.op_span.start + k, len(e.op)) if k >= 0 else e.op_span


def _show_args(args: dict[str, Value]) -> str:
    return ", ".join(f"{k}={v.sap() if hasattr(v, 'sap') else v}" for k, v in args.items())


def _walk(e: ast.Expr | ast.RangeItem) -> Iterator[ast.Expr | ast.RangeItem]:
    yield e
    if isinstance(e, ast.Call):
        for x in (*e.args, *(k.value for k in e.kwargs), *e.misplaced):
            yield from _walk(x)
    elif isinstance(e, ast.ListExpr):
        for it in e.items:
            yield from _walk(it)
    elif isinstance(e, ast.RangeItem):
        yield from _walk(e.start)
        yield from _walk(e.stop)
    elif isinstance(e, ast.BinExpr):
        yield from _walk(e.left)
        yield from _walk(e.right)
    elif isinstance(e, ast.UnaryExpr):
        yield from _walk(e.operand)


def _names(e: ast.Expr) -> Iterator[tuple[str, Span]]:
    """Every name an expression refers to (variables and called functions), with its span."""
    for x in _walk(e):
        if isinstance(x, ast.Name):
            yield x.id, x.span
        elif isinstance(x, ast.Call):
            yield x.func, x.func_span


def _references(d: Def) -> list[tuple[str, Span]]:
    """The top-level names a definition uses (a pattern's parameters shadow them in its body)."""
    if isinstance(d.decl, ast.Let):
        return list(_names(d.decl.value))
    params = {p.name for p in d.decl.params}
    out = [r for p in d.decl.params if p.default is not None for r in _names(p.default)]
    return out + [(name, s) for name, s in _names(d.decl.body) if name not in params]


def _find_cycle(start: Def, graph: dict[Def, list[tuple[Def, Span]]]) -> list[Def] | None:
    """A cycle through ``start`` (as a path start -> ... -> back to start), if there is one."""
    stack: list[tuple[Def, list[Def]]] = [(start, [start])]
    seen: set[Def] = set()
    while stack:
        node, path = stack.pop()
        for nxt, _ in graph[node]:
            if nxt is start:
                return path
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None
