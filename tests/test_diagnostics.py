"""Diagnostics: the SPEC section 3 format, and the corpus of bad inputs in tests/fixtures/bad.

Each fixture starts with one ``# expect: CODE LINE:COL [FILE]`` line per error it must produce
(FILE: the basename of another file the error is in, for errors inside imported files). The
errors reported must be exactly those, at those places.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import patternc
from patternc.diagnostics import Diagnostic, SapError, Source, Span

BAD = Path(__file__).parent / "fixtures" / "bad"
FIXTURES = sorted(BAD.glob("*.sap"))
_EXPECT = re.compile(r"^# expect: (SAP\d{3}) (\d+):(\d+)(?: (\S+))?$", re.M)


def _expected(path: Path) -> list[tuple[str, int, int, str]]:
    return [(code, int(line), int(col), other or path.name)
            for code, line, col, other in _EXPECT.findall(path.read_text())]


def test_corpus_is_large_and_covers_every_class() -> None:
    assert len(FIXTURES) >= 40
    codes = [code for p in FIXTURES for code, *_ in _expected(p)]
    for cls in "12345":
        assert sum(c[3] == cls for c in codes) >= 4, f"too few SAP{cls}xx fixtures"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_bad_fixture(path: Path) -> None:
    expected = _expected(path)
    assert expected, f"{path.name} has no '# expect:' line"
    with pytest.raises(SapError) as info:
        patternc.load(path)
    got = [(d.code, d.span.line, d.column, Path(d.file).name) for d in info.value.errors]
    assert sorted(got) == sorted(expected), str(info.value)
    for d in info.value.errors:
        text = d.render()
        # every diagnostic shows the source line with a caret under the span
        lines = text.splitlines()
        assert lines[0].startswith(f"{d.file}:{d.span.line}:{d.column}: error[{d.code}]: ")
        assert lines[1] == "    " + d.source_line.rstrip()
        assert lines[2].strip() and set(lines[2].strip()) == {"^"}
        assert lines[2].index("^") == 4 + d.column


def test_spec_example_renders_exactly() -> None:
    path = BAD / "range_dilation.sap"
    with pytest.raises(SapError) as info:
        patternc.load(path)
    assert str(info.value) == (
        f"{path}:4:24: error[SAP201]: dilation must be >= 1, got 0\n"
        "    pattern p = band(256) | dilated(256, 0)\n"
        "                            ^^^^^^^^^^^^^^^\n"
        "    hint: dilated(w, 1) is band(w)")


def test_sap_error_is_a_pattern_error_with_diagnostics() -> None:
    with pytest.raises(patternc.PatternError) as info:
        patternc.pattern("band(-1) | strided(0)")
    err = info.value
    assert isinstance(err, SapError)
    assert [d.code for d in err.diagnostics] == ["SAP201", "SAP201"]
    assert str(err).endswith("2 errors")
    assert err.diagnostics[0].to_dict()["column"] == 0
    assert err.diagnostics[1].to_dict()["column"] == 11


def test_caret_spans_the_node_and_stops_at_the_end_of_the_line() -> None:
    src = Source("f.sap", "let a = (band(1)\n  | causal)\n")
    d = Diagnostic.at(src, Span(1, 10, 2, 11, 9, 27), "SAP401", "x")
    assert d.render().splitlines()[2] == "    " + " " * 9 + "^" * 7
    one = Diagnostic.at(src, src.span_at(len(src.text)), "SAP101", "end")  # at the very end
    assert one.span.line == 3 and "^" not in one.render()


def test_tabs_keep_the_caret_under_the_span() -> None:
    with pytest.raises(SapError) as info:
        patternc.pattern("\tband(-1)")
    line, caret = info.value.render().splitlines()[1:3]
    assert line.index("b") == caret.index("^")


def test_warnings_do_not_count_as_errors() -> None:
    src = Source("f.sap", "pattern p = rows([0])\n")
    w = Diagnostic.at(src, src.span_at(8), "SAP602", "empty rows", severity="warning")
    err = SapError([w])
    assert err.errors == () and "warning[SAP602]" in str(err)


@pytest.mark.parametrize(("text", "code", "hint"), [
    ("band(3) | causl", "SAP301", "did you mean 'causal'?"),
    ("n / 4", "SAP105", "//"),
    ("dilated(4, 0)", "SAP201", "dilated(w, 1) is band(w)"),
    ("window(lft=2, right=1)", "SAP403", "did you mean 'left'?"),
    ("global(3)", "SAP401", "write [3] for a single token"),
    ("causal + band(1)", "SAP401", "use |"),
    ("-causal", "SAP401", "~p"),
    ("band(3", "SAP103", "add ')'"),
])
def test_hints(text: str, code: str, hint: str) -> None:
    with pytest.raises(SapError) as info:
        patternc.pattern(text)
    [d] = info.value.diagnostics
    assert d.code == code and d.hint is not None and hint in d.hint, str(info.value)


def test_one_mistake_is_reported_once() -> None:
    # `w` is broken; the patterns using it are not reported again
    src = "let w = band(-1)\npattern a = band(w)\npattern b = a | causal\n"
    with pytest.raises(SapError) as info:
        patternc.load(_write(src))
    assert [(d.code, d.span.line) for d in info.value.diagnostics] == [("SAP201", 1)]


def test_statements_that_do_not_parse_do_not_cause_undefined_names() -> None:
    src = "let w = (3\npattern p = band(w)\n"
    with pytest.raises(SapError) as info:
        patternc.load(_write(src))
    assert [d.code for d in info.value.diagnostics] == ["SAP103"]


def _write(text: str) -> Path:
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".sap", delete=False)
    f.write(text)
    f.close()
    return Path(f.name)


def test_color_only_adds_ansi_codes() -> None:
    import re as _re

    from patternc.diagnostics import render

    with pytest.raises(SapError) as info:
        patternc.pattern("band(-1) | bnad(2)")
    colored = render(info.value.diagnostics, color=True)
    assert "\x1b[" in colored
    assert _re.sub(r"\x1b\[[0-9;]*m", "", colored) == render(info.value.diagnostics) == str(info.value)


def test_a_file_given_to_pattern_gets_a_hint() -> None:
    with pytest.raises(SapError) as info:
        patternc.pattern("# a file\npattern p = causal\n")
    [d] = info.value.diagnostics
    assert d.code == "SAP101" and d.hint is not None and "patternc.load" in d.hint
