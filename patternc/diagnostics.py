"""Diagnostics: what every mistake in a ``.sap`` file becomes (SPEC section 3).

A diagnostic has a stable code, a location, the source line, a caret span and maybe a hint::

    longformer.sap:3:25: error[SAP201]: dilation must be >= 1, got 0
        pattern p = band(256) | dilated(256, 0)
                                ^^^^^^^^^^^^^^^
        hint: dilated(w, 1) is band(w)

Lines and columns are 1-based, as in compilers and editors. The code table is in
``docs/language.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from patternc.ir import PatternError


@dataclass(frozen=True)
class Span:
    """A region of the source: 1-based line and column, end exclusive, plus character offsets."""

    line: int
    col: int
    end_line: int
    end_col: int
    start: int
    end: int

    def to(self, other: Span) -> Span:
        """The span from the start of ``self`` to the end of ``other``."""
        return Span(self.line, self.col, other.end_line, other.end_col, self.start, other.end)


@dataclass(frozen=True)
class Source:
    """A named text: a file path or ``<expr>``."""

    name: str
    text: str

    @cached_property
    def lines(self) -> list[str]:
        # lines end at "\n" only, as in the lexer (other line breaks stay inside a line)
        return self.text.split("\n")

    def line(self, k: int) -> str:
        return self.lines[k - 1].rstrip("\r") if 1 <= k <= len(self.lines) else ""

    def span_at(self, offset: int, length: int = 1) -> Span:
        """The span of ``length`` characters from character ``offset`` (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return Span(line, col, line, col + max(length, 0), offset, offset + max(length, 0))


@dataclass(frozen=True)
class Diagnostic:
    code: str  # SAPnnn, see docs/language.md
    message: str
    file: str
    span: Span
    source_line: str
    hint: str | None = None
    severity: str = "error"  # or "warning"
    notes: tuple[str, ...] = ()

    @staticmethod
    def at(source: Source, span: Span, code: str, message: str, hint: str | None = None,
           severity: str = "error", notes: Iterable[str] = ()) -> Diagnostic:
        return Diagnostic(code, message, source.name, span, source.line(span.line), hint, severity,
                          tuple(notes))

    @property
    def column(self) -> int:
        """The column shown to users: counted from 0, as SPEC section 3's example does
        (Lark's spans, kept in ``span``, count from 1)."""
        return self.span.col - 1

    @property
    def location(self) -> str:
        return f"{self.file}:{self.span.line}:{self.column}"

    def render(self, color: bool = False) -> str:
        """The text of SPEC section 3; ``color`` adds ANSI colors (for a terminal)."""
        c = _ansi if color else _plain
        sev = c(self.severity, "1;31" if self.severity == "error" else "1;33")
        out = [f"{c(self.location, '1')}: {sev}[{self.code}]: {c(self.message, '1')}"]
        if self.source_line.strip():
            out += ["    " + self.source_line.expandtabs(4).rstrip(), "    " + c(self._carets(), "1;31")]
        out += [f"    {c('note', '1;34')}: {n}" for n in self.notes]
        if self.hint:
            out.append(f"    {c('hint', '1;36')}: {self.hint}")
        return "\n".join(out)

    def _carets(self) -> str:
        line = self.source_line
        start = min(self.span.col - 1, len(line))
        # a span running past this line is underlined to the end of the line
        end = self.span.end_col - 1 if self.span.end_line == self.span.line else len(line.rstrip())
        end = min(max(end, start + 1), max(len(line), start + 1))
        pad = len(line[:start].expandtabs(4))
        width = len(line[:end].expandtabs(4)) - pad
        return " " * pad + "^" * max(width, 1)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "file": self.file,
                "line": self.span.line, "column": self.column, "end_line": self.span.end_line,
                "end_column": self.span.end_col, "hint": self.hint, "notes": list(self.notes)}


class SapError(PatternError):
    """Bad ``.sap`` input: carries every diagnostic found; ``str()`` renders them all."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = in_order(diagnostics)
        super().__init__(self.render())

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    def render(self) -> str:
        return render(self.diagnostics)

    def __str__(self) -> str:
        return self.render()


def in_order(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Sorted by position within each file; files in the order they first appear."""
    ds = list(diagnostics)
    files = {d.file: k for k, d in reversed(list(enumerate(ds)))}
    return tuple(sorted(ds, key=lambda d: (files[d.file], d.span.line, d.span.col)))


def _plain(text: str, code: str) -> str:
    return text


def _ansi(text: str, code: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m"


def render(diagnostics: Iterable[Diagnostic], color: bool = False) -> str:
    """All diagnostics, separated by blank lines, followed by a count of errors."""
    ds = list(diagnostics)
    text = "\n\n".join(d.render(color) for d in ds)
    errors = sum(d.severity == "error" for d in ds)
    if errors > 1:
        text += f"\n\n{errors} errors"
    return text
