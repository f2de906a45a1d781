"""Text to syntax tree: the Lark LALR parser, a Transformer to :mod:`.ast`, and syntax errors.

A file that does not parse is cut into statements (at each ``import`` / ``let`` / ``pattern``
keyword) and each statement is parsed alone, so that every syntax error is reported and the
statements that do parse still get checked.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.tree import Meta

from patternc.diagnostics import Diagnostic, SapError, Source, Span
from patternc.frontend import ast


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.files("patternc").joinpath("grammar/sap.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", start=["module", "expression"],
                propagate_positions=True, maybe_placeholders=False)


def _span(m: Meta | Token) -> Span:
    if isinstance(m, Token):
        return Span(m.line or 1, m.column or 1, m.end_line or 1, m.end_column or 1,
                    m.start_pos or 0, m.end_pos or 0)
    return Span(m.line, m.column, m.end_line, m.end_column, m.start_pos, m.end_pos)


@dataclass(frozen=True)
class _Positional:
    value: ast.Expr


_BINOPS = {"union": "|", "intersect": "&", "add": "+", "sub": "-", "mul": "*", "floordiv": "//",
           "mod": "%", "truediv": "/"}


@v_args(meta=True)
class _ToAst(Transformer[Token, Any]):
    """Parse tree -> ast nodes (one method per grammar rule alias)."""

    def module(self, meta: Meta, stmts: list[ast.Stmt]) -> ast.Module:
        return ast.Module(tuple(stmts))

    def expression(self, meta: Meta, children: list[ast.Expr]) -> ast.Expr:
        return children[0]

    def import_path(self, meta: Meta, children: list[Token]) -> ast.Import:
        return ast.Import(str(children[0])[1:-1], True, _span(meta))

    def import_name(self, meta: Meta, children: list[Token]) -> ast.Import:
        return ast.Import(str(children[0]), False, _span(meta))

    def let_stmt(self, meta: Meta, children: list[Any]) -> ast.Let:
        name, value = children
        return ast.Let(str(name), _span(name), value, _span(meta))

    def pattern_stmt(self, meta: Meta, children: list[Any]) -> ast.PatternDecl:
        name, *rest = children
        params: tuple[ast.Param, ...] = rest[0] if len(rest) == 2 else ()
        return ast.PatternDecl(str(name), _span(name), params, rest[-1], _span(meta))

    def params(self, meta: Meta, children: list[ast.Param]) -> tuple[ast.Param, ...]:
        return tuple(children)

    def param(self, meta: Meta, children: list[Any]) -> ast.Param:
        return ast.Param(str(children[0]), children[1] if len(children) > 1 else None, _span(children[0]))

    def int_lit(self, meta: Meta, children: list[Token]) -> ast.IntLit:
        digits = str(children[0]).replace("_", "")
        # too many digits for a 64-bit integer (and for Python's int() limit): resolution reports it
        value = int(digits) if len(digits.lstrip("0")) <= ast.MAX_DIGITS else None
        return ast.IntLit(value, _span(children[0]))

    def name(self, meta: Meta, children: list[Token]) -> ast.Name:
        return ast.Name(str(children[0]), _span(children[0]))

    def call(self, meta: Meta, children: list[Any]) -> ast.Call:
        func, *args = children
        first_kw = next((k for k, a in enumerate(args) if isinstance(a, ast.Keyword)), len(args))
        return ast.Call(str(func), tuple(a.value for a in args[:first_kw]),
                        tuple(a for a in args if isinstance(a, ast.Keyword)), _span(meta), _span(func),
                        tuple(a.value for a in args[first_kw:] if isinstance(a, _Positional)))

    def positional(self, meta: Meta, children: list[ast.Expr]) -> _Positional:
        return _Positional(children[0])

    def keyword(self, meta: Meta, children: list[Any]) -> ast.Keyword:
        return ast.Keyword(str(children[0]), children[1], _span(children[0]))

    def list_expr(self, meta: Meta, children: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(tuple(children), _span(meta))

    def range_item(self, meta: Meta, children: list[ast.Expr]) -> ast.RangeItem:
        return ast.RangeItem(children[0], children[1], _span(meta))

    def neg(self, meta: Meta, children: list[ast.Expr]) -> ast.UnaryExpr:
        return ast.UnaryExpr("-", children[0], _span(meta))

    def invert(self, meta: Meta, children: list[ast.Expr]) -> ast.UnaryExpr:
        return ast.UnaryExpr("~", children[0], _span(meta))

    def __default__(self, data: Any, children: list[Any], meta: Meta) -> Any:
        if data in _BINOPS:
            left, right = children
            op_span = Span(left.span.end_line, left.span.end_col, right.span.line, right.span.col,
                           left.span.end, right.span.start)
            return ast.BinExpr(_BINOPS[data], left, right, _span(meta), op_span)
        raise AssertionError(f"grammar rule without a transformer method: {data}")  # pragma: no cover


# --------------------------------------------------------------------------- syntax errors

_WORDS = {"NAME": "a name", "INT": "an integer", "STRING": 'a quoted path like "other.sap"',
          "$END": "the end of the input"}


def _describe(terminal: str) -> str:
    if terminal in _WORDS:
        return _WORDS[terminal]
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return f"'{pattern.value}'"


_EXPR_START = frozenset({"NAME", "INT", "LPAR", "LSQB"})
_OPERATORS = frozenset({"VBAR", "AMPERSAND"})


def _expected(names: set[str] | frozenset[str]) -> str:
    if names >= _EXPR_START:
        return "an expression (a name, a number, '(' or '[')"
    if names >= _OPERATORS:
        rest = ", ')', ','," if {"RPAR", "COMMA"} & names else ""
        return f"an operator (| & - + * // %){rest} or the end of the expression"
    words = sorted({_describe(t) for t in names}, key=lambda w: (not w[0].isalpha(), w))
    if len(words) > 8:
        words = [*words[:8], "..."]
    return ", ".join(words)


def _unclosed(text: str, upto: int) -> int | None:
    """The offset of the innermost bracket still open at ``upto``, if any."""
    stack: list[int] = []
    for m in re.finditer(r'"[^"\n]*"?|#[^\n]*|[()\[\]]', text[:upto]):
        c = m.group()
        if c in "([":
            stack.append(m.start())
        elif c in ")]" and stack and text[stack[-1]] == "([" [")]".index(c)]:
            stack.pop()
    return stack[-1] if stack else None


def _syntax_diagnostic(e: UnexpectedInput, source: Source) -> Diagnostic:
    text = source.text
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream or 0
        span = source.span_at(pos)
        ch = text[pos] if pos < len(text) else ""
        if ch == '"':
            eol = text.find("\n", pos)
            length = (len(text) if eol < 0 else eol) - pos
            return Diagnostic.at(source, source.span_at(pos, length), "SAP102",
                                 "unterminated string", 'close the path with a second "')
        if ch == "." and text[pos:pos + 2] == "..":
            return Diagnostic.at(source, source.span_at(pos, 2), "SAP101",
                                 "unexpected '..' outside a list",
                                 "ranges are written inside a list: [a..b]")
        line = text[text.rfind("\n", 0, pos) + 1:pos]
        hint: str | None
        if line.lstrip().startswith("import"):
            hint = 'an import is a stdlib name or a quoted path: import "other.sap"'
        else:
            hint = "integers only: .sap has no fractions" if ch == "." else None
        return Diagnostic.at(source, span, "SAP100", f"unexpected character {ch!r}", hint)
    if not isinstance(e, UnexpectedToken):  # UnexpectedEOF: not raised by LALR, but be safe
        return Diagnostic.at(source, source.span_at(max(len(text.rstrip()) - 1, 0)), "SAP101",
                             "unexpected end of input")
    tok = e.token
    expected = set(e.expected) if e.expected else set()
    at_end = tok.type == "$END"
    opener = _unclosed(text, len(text) if at_end else (tok.start_pos or 0))
    if opener is not None and (at_end or tok.type in ("IMPORT", "LET", "PATTERN")) and (
            {"RPAR", "RSQB"} & expected):
        close = ")" if text[opener] == "(" else "]"
        return Diagnostic.at(source, source.span_at(opener), "SAP103", f"'{text[opener]}' is never closed",
                             f"add '{close}'")
    if at_end:
        end = len(text.rstrip())
        return Diagnostic.at(source, source.span_at(max(end - 1, 0)), "SAP101",
                             f"unexpected end of input; expected {_expected(expected)}")
    if opener is None:  # outside brackets, ')' and ',' cannot be what was missing
        expected -= {"RPAR", "RSQB", "COMMA"}
    span = _span(tok)
    shown = tok.value if tok.type != "$END" else "end of input"
    if tok.type in ("IMPORT", "LET", "PATTERN") and _line_start(text, tok.start_pos or 0) and _code(
            text[:tok.start_pos]):
        last = len(text[:tok.start_pos].rstrip()) - 1
        return Diagnostic.at(source, source.span_at(max(last, 0)), "SAP101",
                             f"the statement ends too early: expected {_expected(expected)}",
                             f"a new statement ('{tok.value}') starts on the next line")
    hint = None
    if tok.value == "..":
        return Diagnostic.at(source, span, "SAP101", "unexpected '..' outside a list",
                             "ranges are written inside a list: [a..b]")
    if tok.type in ("RPAR", "RSQB") and opener is None:
        return Diagnostic.at(source, span, "SAP103", f"unmatched '{shown}'", "remove it or open it earlier")
    if expected == {"EQUAL"} or expected == {"EQUAL", "LPAR"}:
        hint = "definitions are written `let name = value` or `pattern name(params) = expression`"
    elif tok.type == "EQUAL" and "NAME" in expected:
        hint = "a definition needs a name: let w = 256"
    elif tok.type == "EQUAL":
        hint = "keyword arguments are written inside a call: band(w=256)"
    elif tok.type == "INT" and "NAME" in expected and not expected >= _EXPR_START:
        hint = "names start with a letter or '_'"
    elif tok.type in ("NAME", "INT", "LPAR", "LSQB", "TILDE") and expected >= _OPERATORS:
        hint = "patterns combine with an operator: | (union), & (intersection), - (difference)"
        if opener is not None:
            hint = "separate arguments and list items with ','; " + hint
    message = f"unexpected {shown!r}; expected {_expected(expected)}"
    return Diagnostic.at(source, span, "SAP101", message, hint)


# --------------------------------------------------------------------------- parsing

MAX_SYNTAX_ERRORS = 50  # then stop: the rest of such a file is unlikely to be .sap at all
_STATEMENT = re.compile(r'"[^"\n]*"?|#[^\n]*|\b(import|let|pattern)\b')
_DEFINED = re.compile(r"\b(?:let|pattern)\s+([A-Za-z_]\w*)")


@dataclass(frozen=True)
class ParsedModule:
    """A parsed file: the statements that parsed, syntax errors, and names of broken definitions."""

    module: ast.Module
    errors: tuple[Diagnostic, ...]
    broken: frozenset[str]


def _parse(text: str, start: str) -> Any:
    try:
        return _ToAst().transform(_lark().parse(text, start=start))
    except VisitError as e:  # Lark wraps what a Transformer raises
        raise e.orig_exc from None


def parse_module(source: Source) -> ParsedModule:
    """Parse a whole file, reporting every syntax error.

    After an error, parsing starts again at the next statement (the next ``import`` / ``let`` /
    ``pattern`` keyword that begins a line, or any later one); the statements before the error
    are kept, the broken one is dropped and its name remembered.
    """
    text = source.text
    starts = [m.start() for m in _STATEMENT.finditer(text) if m.group(1)]
    stmts: list[ast.Stmt] = []
    errors: list[Diagnostic] = []
    broken: set[str] = set()
    pos = 0
    while True:
        padded = _blank(text[:pos]) + text[pos:]
        try:
            stmts.extend(_parse(padded, "module").stmts)
            break
        except RecursionError:
            errors.append(_too_deep(source))
            break
        except UnexpectedInput as e:
            errors.append(_syntax_diagnostic(e, Source(source.name, padded)))
            at = _offset(e, len(text))
        # the statements before the broken one parsed: keep them
        # the broken statement is the last one that starts before the error (an error at a
        # keyword means that the statement before it ended too early)
        chunks = list(itertools.pairwise([pos, *(b for b in starts if b > pos), len(text)]))
        a, b = chunks[max((k for k, (a, _) in enumerate(chunks) if a < at), default=0)]
        if a > pos:
            with contextlib.suppress(UnexpectedInput, RecursionError):  # they parsed just before
                stmts.extend(_parse(_blank(text[:pos]) + text[pos:a], "module").stmts)
        broken.update(_DEFINED.findall(text[a:b])[:1])
        later = [b for b in starts if b > at or (b == at and _line_start(text, at))]
        if not later or later[0] <= pos or len(errors) >= MAX_SYNTAX_ERRORS:
            break
        pos = later[0]
    return ParsedModule(ast.Module(tuple(stmts)), tuple(errors), frozenset(broken))


def _blank(text: str) -> str:
    """Spaces for ``text``, keeping its newlines (so that positions stay those of the file)."""
    return re.sub(r"[^\n]", " ", text)


def _line_start(text: str, offset: int) -> bool:
    return not text[text.rfind("\n", 0, offset) + 1:offset].strip()


def _offset(e: UnexpectedInput, end: int) -> int:
    if isinstance(e, UnexpectedToken):
        return end if e.token.type == "$END" else (e.token.start_pos or 0)
    return e.pos_in_stream or 0


def _code(text: str) -> bool:
    return bool(re.sub(r"#[^\n]*", "", text).strip())


def _too_deep(source: Source) -> Diagnostic:
    return Diagnostic.at(source, source.span_at(0), "SAP104", "expression nested too deeply",
                         "split it with `let` definitions")


def parse_expression(source: Source) -> ast.Expr:
    """Parse a single expression (``patternc.pattern``); raises SapError."""
    try:
        return _parse(source.text, "expression")  # type: ignore[no-any-return]
    except UnexpectedInput as e:
        d = _syntax_diagnostic(e, source)
        if re.match(r"\s*(import|let|pattern)\b", re.sub(r"#[^\n]*", "", source.text)):
            d = replace(d, hint="this takes one expression; for a file (import, let, pattern) use "
                                "patternc.load or patternc.frontend.loads")
        raise SapError([d]) from None
    except RecursionError:
        raise SapError([_too_deep(source)]) from None
