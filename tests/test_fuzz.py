"""Fuzzing the front end: whatever the text, only diagnostics come out (SapError), never another
exception, and what does load prints back to itself."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import patternc
from patternc import ir
from patternc.diagnostics import SapError
from patternc.frontend import loads
from patternc.frontend.resolve import stdlib_dir

_TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|\.\.|//|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9_]*|\S|\s+')
_VALID = [p.read_text() for p in sorted(stdlib_dir().glob("*.sap"))] + [
    "let w = 4_096 // 16\nlet g = [0, 1, n - 2..n]\n"
    "pattern p(a = w, b = g) = (band(a) | global(b)) & ~strided(max(2, log2(n))) - random(2, seed = 3)\n"
    "pattern q = heads(p, p(a = 1), causal, window(left = 3, right = 0))\n",
]
_VOCAB = ["(", ")", "[", "]", ",", "=", "|", "&", "-", "~", "+", "*", "//", "/", "%", "..", "n", "0", "-1",
          "4_096", "let", "pattern", "import", "band", "heads", "sqrt", "w", "p", '"x.sap"', "longformer",
          "\n", "#", "seed", "99999999999999999999", "causal", "random_blocks"]


def _must_be_diagnostics(fn, *args) -> object:  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except SapError as e:
        assert e.diagnostics, "a SapError without diagnostics"
        for d in e.diagnostics:
            assert re.fullmatch(r"SAP[1-6]\d\d", d.code) and d.span.line >= 1 and d.span.col >= 1
            d.render()
        return None


def _check_text(text: str) -> None:
    node = _must_be_diagnostics(patternc.pattern, text)
    if isinstance(node, ir.Node):
        assert patternc.pattern(node.sap()) == node
    prog = _must_be_diagnostics(loads, text, "fuzz.sap", stdlib_dir() / "fuzz.sap")
    if prog is not None:
        for node in prog.exported.values():  # type: ignore[attr-defined]
            assert patternc.pattern(node.sap()) == node


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid file with a few tokens deleted, inserted, duplicated or swapped."""
    tokens = _TOKEN.findall(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["delete", "insert", "swap", "duplicate"]))
        if op == "delete":
            del tokens[k]
        elif op == "insert":
            tokens.insert(k, draw(st.sampled_from(_VOCAB)))
        elif op == "duplicate":
            tokens.insert(k, tokens[k])
        else:
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[k], tokens[j] = tokens[j], tokens[k]
    return "".join(tokens)


_FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(mutated())
def test_mutated_valid_files_give_only_diagnostics(text: str) -> None:
    _check_text(text)


@_FAST
@given(st.lists(st.sampled_from([*_VOCAB, " ", "band(3)", "x"]), max_size=30).map("".join))
def test_token_soup_gives_only_diagnostics(text: str) -> None:
    _check_text(text)


@_FAST
@given(st.text(max_size=80))
@example("(" * 5000 + "causal" + ")" * 5000)
@example("~" * 5000 + "causal")
@example("let x = " + "1 + " * 3000 + "1\npattern p = band(x)")
@example('import "\0"')
@example('import "' + "a" * 5000 + '"')
@example("\r\n\x0bband(1)\x0c|\u2028causal")
def test_random_text_gives_only_diagnostics(text: str) -> None:
    _check_text(text)


@_FAST
@given(st.binary(max_size=80))
def test_random_bytes_give_only_diagnostics(tmp_path_factory, data: bytes) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("fuzz") / "bytes.sap"
    path.write_bytes(data)
    _must_be_diagnostics(patternc.load, path)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_check_command_exits_0_or_1_without_traceback(tmp_path_factory, text: str) -> None:  # type: ignore[no-untyped-def]
    import contextlib
    import io

    from patternc.cli import main

    path = tmp_path_factory.mktemp("cli") / "f.sap"
    path.write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", str(path), "--n", "64"])
    assert code in (0, 1) and "Traceback" not in err.getvalue()
    assert (code == 1) == ("error[" in err.getvalue())
