"""The front end: grammar, precedence, keywords, lists, integer expressions, definitions,
imports and the Python surface (``patternc.pattern``, ``patternc.load``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import patternc
from patternc import ir
from patternc.diagnostics import SapError
from patternc.frontend import PatternDef, loads
from tests.strategies import patterns

P = patternc.pattern
A, B, C, D = ir.Band(1), ir.Causal(), ir.Strided(3), ir.Global(ir.TokenList.of(0))
NAMES = {"a": A, "b": B, "c": C, "d": D}


def codes(fn, *args, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(SapError) as info:
        fn(*args, **kwargs)
    return [d.code for d in info.value.diagnostics]


# --------------------------------------------------------------------------- round trip


@given(patterns(symbolic=True, heads=True))
def test_print_then_parse_is_the_identity(x: ir.Node) -> None:
    assert P(x.sap()) == x


# --------------------------------------------------------------------------- operators


@st.composite
def pattern_text(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(st.sampled_from(list(NAMES)))
    kind = draw(st.sampled_from(["|", "&", "-", "~", "()"]))
    if kind == "~":
        return "~" + draw(pattern_text(depth + 1))
    if kind == "()":
        return "(" + draw(pattern_text(depth + 1)) + ")"
    return f"{draw(pattern_text(depth + 1))} {kind} {draw(pattern_text(depth + 1))}"


@given(pattern_text())
def test_operators_have_pythons_precedence(text: str) -> None:
    # Python's | & - ~ on IR nodes are the reference: same precedence and associativity
    assert P(text, **NAMES) == eval(text, {}, dict(NAMES))


@pytest.mark.parametrize(("text", "expected"), [
    ("a | b & c", A | (B & C)),
    ("a & b - c", A & (B - C)),
    ("a - b - c", (A - B) - C),
    ("a - (b - c)", A - (B - C)),
    ("~a - b", (~A) - B),
    ("~(a | b)", ~(A | B)),
    ("~~a", ~~A),
    ("a | b | c", ir.Union((A, B, C))),
    ("(a | b) | c", ir.Union((A, B, C))),
    ("a & (b & c)", ir.Intersect((A, B, C))),
    ("(a | b) & c", ir.Intersect((ir.Union((A, B)), C))),
])
def test_precedence_table(text: str, expected: ir.Node) -> None:
    assert P(text, **NAMES) == expected


# --------------------------------------------------------------------------- primitives and arguments


@pytest.mark.parametrize(("text", "expected"), [
    ("full", ir.Full()), ("empty", ir.Empty()), ("causal", ir.Causal()), ("causal()", ir.Causal()),
    ("window(3, 0)", ir.Window(3, 0)), ("window(right=2, left=5)", ir.Window(5, 2)),
    ("band(w=256)", ir.Band(256)), ("dilated(4, r=2)", ir.Dilated(4, 2)), ("strided(s=7)", ir.Strided(7)),
    ("blocks(64)", ir.Blocks(64)), ("fixed(l=8, c=2)", ir.Fixed(8, 2)), ("fixed(8, 8)", ir.Fixed(8, 8)),
    ("rows([1, 2])", ir.Rows(ir.TokenList.of(1, 2))),
    ("cols(tokens=[0..4])", ir.Cols(ir.TokenList.range(0, 4))),
    ("global([])", ir.Global(ir.TokenList(()))), ("prefix(0)", ir.Prefix(0)),
    ("random(3)", ir.Random(3, 0)), ("random(3, seed=7)", ir.Random(3, 7)), ("random(3, 7)", ir.Random(3, 7)),
    ("random_blocks(2, 64, seed=1)", ir.RandomBlocks(2, 64, 1)),
    ("random_blocks(b=4, r=1)", ir.RandomBlocks(1, 4)),
    ("heads(causal)", ir.Heads((ir.Causal(),))), ("heads(band(1), causal,)", ir.Heads((A, B))),
    ("band(4_096)", ir.Band(4096)), ("band(1_0)", ir.Band(10)),
])
def test_primitives_and_keywords(text: str, expected: ir.Node) -> None:
    assert P(text) == expected


def test_every_primitive_takes_its_field_names_as_keywords() -> None:
    for name, cls in ir.PRIMITIVES.items():
        fs = [f.name for f in dataclasses.fields(cls)]
        args = {"tokens": "[0, 2..4]", "seed": "5", "c": "1"}
        text = f"{name}({', '.join(f'{f}={args.get(f, 2)}' for f in reversed(fs))})" if fs else name
        node = P(text)
        assert type(node) is cls and P(node.sap()) == node


@pytest.mark.parametrize(("text", "code"), [
    ("band(1, 2)", "SAP402"), ("band(x=1)", "SAP403"), ("window(1, left=1)", "SAP404"),
    ("window(1)", "SAP405"), ("random(seed=1)", "SAP405"), ("band(w=1, 2)", "SAP106"),
    ("heads()", "SAP402"), ("heads(p=causal)", "SAP403"), ("sqrt(1, 2)", "SAP402"), ("min(1)", "SAP402"),
    ("band", "SAP407"), ("sqrt", "SAP407"), ("band(band(1))", "SAP401"), ("rows(3)", "SAP401"),
    ("band([1..3])", "SAP401"), ("band(1) * causal", "SAP401"), ("1", "SAP401"), ("[1]", "SAP401"),
    ("band(-1)", "SAP201"), ("dilated(1, 0)", "SAP201"), ("fixed(2, 3)", "SAP202"), ("fixed(2, 0)", "SAP201"),
    ("strided(0)", "SAP201"), ("blocks(0)", "SAP201"), ("random_blocks(1, 0)", "SAP201"),
    ("prefix(-1)", "SAP201"), ("random(-2)", "SAP201"), ("window(0, -1)", "SAP201"),
    ("band(1 // 0)", "SAP203"), ("band(n % 0)", "SAP203"), ("band(log2(0))", "SAP204"),
    ("band(sqrt(-4))", "SAP205"), ("band(99999999999999999999)", "SAP206"),
    ("band(4294967296 * 4294967296)", "SAP206"), ("band(n / 2)", "SAP105"), ("bnd(3)", "SAP301"),
])
def test_argument_errors(text: str, code: str) -> None:
    assert codes(P, text) == [code]


def test_range_checks_agree_with_the_ir() -> None:
    # every primitive with an out-of-range argument is an error, and the error is ir.argument_errors'
    for text in ["band(-1)", "dilated(-1, 1)", "window(-1, 0)", "fixed(0, 1)", "random_blocks(-1, 1)"]:
        name, args = text[:-1].split("(")
        node = ir.PRIMITIVES[name](*map(int, args.split(",")))
        assert ir.argument_errors(node)
        assert codes(P, text)[0] in ("SAP201", "SAP202")


def test_independent_errors_in_one_expression_are_all_reported() -> None:
    got = codes(P, "band(-1) | strided(0) & fixed(1, 2) | bnad(1)")
    assert got == ["SAP201", "SAP201", "SAP202", "SAP301"]


# --------------------------------------------------------------------------- integers and lists


@st.composite
def int_text(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(st.sampled_from(["n", "0", "1", "7", "4_096", "x"]))
    kind = draw(st.sampled_from(["+", "-", "*", "//", "%", "neg", "()", "sqrt", "log2", "min", "max"]))
    a, b = draw(int_text(depth + 1)), draw(int_text(depth + 1))
    if kind == "neg":
        return "-" + a
    if kind == "()":
        return f"({a})"
    if kind in ("sqrt", "log2"):
        return f"{kind}(max(1, {a}))"
    if kind in ("min", "max"):
        return f"{kind}({a}, {b})"
    if kind in ("//", "%"):
        return f"{a} {kind} max(1, {b})"
    return f"{a} {kind} {b}"


_PY = {"sqrt": math.isqrt, "log2": lambda v: v.bit_length() - 1, "min": min, "max": max}


@given(int_text(), st.integers(1, 10_000))
def test_integer_expressions_evaluate_like_python(text: str, n: int) -> None:
    node = P(f"rows([{text}])", x=5)
    [value] = node.tokens.items
    expected = eval(text.replace("4_096", "4096"), {}, {**_PY, "n": n, "x": 5})
    assert ir.eval_int(value, n) == expected
    # constants fold; expressions with n stay symbolic
    assert isinstance(value, int) == ("n" not in text.replace("min", "").replace("sqrt", ""))


def test_n_stays_symbolic_and_constants_fold() -> None:
    assert P("band(n // 4)") == ir.Band(ir.BinOp("//", ir.N(), 4))
    assert P("band(2 * 3 + 1)") == ir.Band(7)
    assert P("band(-(-3))") == ir.Band(3)
    assert P("band(-n + 1)") == ir.Band(ir.BinOp("+", ir.Neg(ir.N()), 1))
    assert P("band(sqrt(n))") == ir.Band(ir.Func("sqrt", (ir.N(),)))
    assert P("band(sqrt(17) + log2(1024) + min(3, 9, 2) + max(1, 4))") == ir.Band(4 + 10 + 2 + 4)
    assert P("band(-7 // 2 + 8)") == ir.Band(4)
    assert P("band(-7 % 3)") == ir.Band(2)  # Python's floor semantics


def test_lists_and_ranges() -> None:
    assert P("global([0, 1, 64..72])") == ir.Global(ir.TokenList.of(0, 1, ir.Range(64, 72)))
    last4 = ir.Range(ir.BinOp("-", ir.N(), 4), ir.N())
    assert P("rows([n - 4..n, -1])") == ir.Rows(ir.TokenList.of(last4, -1))
    assert str(P("cols([0..16])")) == "cols([0..16])"
    assert P("cols(g)", g=[0, range(2, 5)]) == ir.Cols(ir.TokenList.of(0, ir.Range(2, 5)))
    assert P("cols(g)", g=range(3)) == ir.Cols(ir.TokenList.range(0, 3))
    assert codes(P, "cols([causal])") == ["SAP401"]
    assert codes(P, "cols([g])", g=[1]) == ["SAP401"]
    assert codes(P, "cols([0..[1]])") == ["SAP401"]


# --------------------------------------------------------------------------- files


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_let_pattern_and_exports(tmp_path: Path) -> None:
    prog = patternc.load(write(tmp_path, "m.sap", """
        # the example of SPEC section 2
        import longformer
        let w = 256
        let g = [0, 1, 64..72]
        let local = band(w) & causal
        pattern lf(w = 256, g = [0]) = band(w) | global(g)
        pattern main = lf(w = 512) & causal | random_blocks(2, 64, seed = 1)
        pattern needs(k) = band(k) | local
        pattern use_stdlib = longformer(w = 128) & causal
    """))
    assert list(prog.exported) == ["lf", "main", "use_stdlib"]  # file order; not `needs`, not imported ones
    g0 = ir.Global(ir.TokenList.of(0))
    assert prog.exported["main"] == (ir.Band(512) | g0) & ir.Causal() | ir.RandomBlocks(2, 64, 1)
    assert prog.exported["use_stdlib"] == (ir.Band(64) | ir.Global(ir.TokenList.of(0))) & ir.Causal()
    assert prog["w"] == 256 and prog["g"] == ir.TokenList.of(0, 1, ir.Range(64, 72))
    assert prog["local"] == ir.Band(256) & ir.Causal()
    lf = prog["lf"]
    assert isinstance(lf, PatternDef) and lf.params == ("w", "g") and lf.required == ()
    assert lf(w=128) == ir.Band(128) | ir.Global(ir.TokenList.of(0))
    assert lf(8, [3]) == ir.Band(8) | ir.Global(ir.TokenList.of(3))
    half = ir.BinOp("//", ir.N(), 2)
    assert lf(w=half) == ir.Band(half) | g0
    assert lf.node == lf() == prog.exported["lf"]
    assert (lf | ir.Causal()) == lf.node | ir.Causal() and (ir.Causal() & lf) == ir.Causal() & lf.node
    assert ~lf == ~lf.node and lf - ir.Causal() == lf.node - ir.Causal() and str(lf) == lf.node.sap()
    assert lf.mask(8).equal(lf.node.mask(8))
    needs = prog["needs"]
    assert needs(k=2) == ir.Band(2) | (ir.Band(256) & ir.Causal())
    with pytest.raises(patternc.PatternError):
        needs.node  # noqa: B018
    with pytest.raises(TypeError):
        needs()
    with pytest.raises(TypeError):
        lf(width=3)
    with pytest.raises(SapError) as info:
        lf(w=-2)
    assert [d.code for d in info.value.diagnostics] == ["SAP201"]
    assert "in lf(w=-2) called from Python" in str(info.value)
    assert "longformer" in prog and "nothing" not in prog
    with pytest.raises(KeyError, match="did you mean"):
        prog["mian"]
    assert prog.expression("lf(w=4) & needs(1)") == (ir.Band(4) | ir.Global(ir.TokenList.of(0))) & (
        ir.Band(1) | (ir.Band(256) & ir.Causal()))


def test_default_may_use_n_and_earlier_or_later_names(tmp_path: Path) -> None:
    prog = patternc.load(write(tmp_path, "m.sap", """
        pattern p(l = sqrt(n), c = k) = fixed(l, c) & causal
        let k = min(8, sqrt(n))
    """))
    n = ir.N()
    root = ir.Func("sqrt", (n,))
    assert prog.exported["p"] == ir.Fixed(root, ir.Func("min", (8, root))) & ir.Causal()


def test_pattern_call_errors_point_into_the_body_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, "m.sap", "pattern lf(w) = band(w)\npattern p = lf(-3)\n")
    with pytest.raises(SapError) as info:
        patternc.load(path)
    [d] = info.value.diagnostics
    assert (d.code, d.span.line, d.span.col) == ("SAP201", 1, 17)
    assert d.notes == (f"in lf(w=-3) called at {path}:2:12",)


def test_recursion_is_an_error_with_the_cycle(tmp_path: Path) -> None:
    with pytest.raises(SapError) as info:
        text = "pattern a = b\npattern b(x = 1) = c | band(x)\npattern c = ~a\n"
        patternc.load(write(tmp_path, "m.sap", text))
    [d] = info.value.diagnostics
    assert d.code == "SAP303" and "a -> b -> c -> a" in d.message
    with pytest.raises(SapError) as info:
        patternc.load(write(tmp_path, "s.sap", "pattern s(k) = s(k) | band(k)\n"))
    assert [d.code for d in info.value.diagnostics] == ["SAP303"]


def test_parameters_shadow_file_names(tmp_path: Path) -> None:
    text = "let w = 5\npattern p(w = 2) = band(w)\npattern q = band(w)\n"
    prog = patternc.load(write(tmp_path, "m.sap", text))
    assert prog.exported == {"p": ir.Band(2), "q": ir.Band(5)}


def test_relative_imports_and_import_errors(tmp_path: Path) -> None:
    write(tmp_path, "lib/base.sap", 'import "deeper/x.sap"\npattern base(w = 3) = band(w) | x\nlet k = 7\n')
    write(tmp_path, "lib/deeper/x.sap", "pattern x = cols([0])\n")
    prog = patternc.load(write(tmp_path, "main.sap", 'import "lib/base.sap"\npattern m = base(k)\n'))
    assert prog.exported == {"m": ir.Band(7) | ir.Cols(ir.TokenList.of(0))}
    # what an imported file itself imports is not visible
    m2 = write(tmp_path, "m2.sap", 'import "lib/base.sap"\npattern m = x\n')
    assert codes(patternc.load, m2) == ["SAP301"]
    # cycles through several files
    write(tmp_path, "c1.sap", 'import "c2.sap"\npattern one = full\n')
    write(tmp_path, "c2.sap", 'import "c3.sap"\npattern two = full\n')
    write(tmp_path, "c3.sap", 'import "c1.sap"\npattern three = full\n')
    with pytest.raises(SapError) as info:
        patternc.load(tmp_path / "c1.sap")
    [d] = info.value.diagnostics
    assert d.code == "SAP502" and "c1.sap -> c2.sap -> c3.sap -> c1.sap" in d.message
    # the same file imported twice, directly and through a path, is fine
    text = 'import "lib/deeper/x.sap"\nimport "lib/../lib/deeper/x.sap"\npattern t = x\n'
    ok = write(tmp_path, "twice.sap", text)
    assert patternc.load(ok).exported == {"t": ir.Cols(ir.TokenList.of(0))}
    assert codes(patternc.load, write(tmp_path, "nf.sap", 'import "lib/bas.sap"\n')) == ["SAP501"]
    bad = write(tmp_path, "bad_utf8.sap", "")
    bad.write_bytes(b"pattern p = \xff\n")
    assert codes(patternc.load, write(tmp_path, "imp_bad.sap", 'import "bad_utf8.sap"\n')) == ["SAP503"]
    assert codes(patternc.load, tmp_path / "missing.sap") == ["SAP503"]


def test_stdlib_imports_by_bare_name() -> None:
    prog = loads("import sparse_transformer\npattern p = sparse_transformer_strided(l = 8)\n")
    assert prog.exported["p"] == (ir.Window(8, 0) | ir.Strided(8)) & ir.Causal()
    with pytest.raises(SapError) as info:
        loads("import longformr\n")
    assert info.value.diagnostics[0].hint == "did you mean 'longformer'?"


def test_names_and_definitions() -> None:
    assert codes(loads, "let w = 1\nlet w = 2\n") == ["SAP302"]
    assert codes(loads, "import longformer\nlet longformer = 2\n") == ["SAP302"]
    assert codes(loads, "let band = 1\npattern p = band(2)\n") == ["SAP304"]  # band(2) still the built-in
    assert codes(loads, "let n = 1\n") == ["SAP304"]
    assert codes(loads, "pattern def = causal\n") == ["SAP305"]
    assert codes(loads, "pattern p(if) = causal\n") == ["SAP305"]
    assert codes(loads, "let w = 3\npattern p = w(1)\n") == ["SAP406"]
    assert codes(loads, "pattern p(k) = k(1)\n") == ["SAP406"]
    assert codes(loads, "pattern p(k) = band(kk)\n") == ["SAP301"]  # checked without calling p
    assert codes(loads, "pattern p = 3\n") == ["SAP401"]
    # a broken definition is reported once, not again where it is used
    assert codes(loads, "let w = band(-1)\npattern p = band(w)\npattern q = p\n") == ["SAP201"]


def test_bindings() -> None:
    assert P("band(w) & p", w=4, p=ir.Causal()) == ir.Band(4) & ir.Causal()
    lf = loads("pattern lf(w) = band(w)\n")["lf"]
    assert P("lf(3) | causal", lf=lf) == ir.Band(3) | ir.Causal()
    with pytest.raises(TypeError):
        P("band(w)", w=1.5)
    with pytest.raises(TypeError):
        P("band(w)", w=True)
    with pytest.raises(ValueError, match="built into"):
        P("band(n)", n=3)
    assert codes(P, "band(w)") == ["SAP301"]


def test_syntax_errors_are_all_reported() -> None:
    text = "let a = (1\nlet b = 2 +\npattern c = band(3) | | causal\npattern d = band(nope)\n"
    assert codes(loads, text) == ["SAP103", "SAP101", "SAP101", "SAP301"]


def test_comments_newlines_and_trailing_commas() -> None:
    prog = loads("# c\npattern p(\n  w = 2,  # width\n) =\n  band(w)  # tail\n  | global([0, 1,])\n")
    assert prog.exported["p"] == ir.Band(2) | ir.Global(ir.TokenList.of(0, 1))


def _symbolic_everywhere(x: ir.Int) -> bool:
    """No constant sub-expression (those fold to numbers when parsed)."""
    if isinstance(x, int):
        return True
    if not ir.is_symbolic(x) or (isinstance(x, ir.BinOp) and x.op in ("//", "%") and x.b == 0):
        return False  # (a literal zero divisor is an error, SAP203)
    kids = (x.a,) if isinstance(x, ir.Neg) else (x.a, x.b) if isinstance(x, ir.BinOp) else \
        x.args if isinstance(x, ir.Func) else ()
    return all(_symbolic_everywhere(k) for k in kids)


symbolic_ints = st.recursive(
    st.just(ir.N()) | st.integers(-3, 9),
    lambda kids: st.one_of(
        st.builds(ir.BinOp, st.sampled_from(["+", "-", "*", "//", "%"]), kids, kids),
        st.builds(ir.Neg, kids),
        st.builds(lambda a: ir.Func("sqrt", (a,)), kids), st.builds(lambda a: ir.Func("log2", (a,)), kids),
        st.builds(lambda a, b: ir.Func("min", (a, b)), kids, kids),
        st.builds(lambda a, b: ir.Func("max", (a, b)), kids, kids)),
    max_leaves=8).filter(lambda x: ir.is_symbolic(x) and _symbolic_everywhere(x))


@given(symbolic_ints, symbolic_ints)
def test_symbolic_integers_round_trip(x: ir.Int, y: ir.Int) -> None:
    for node in (ir.Window(x, y), ir.Rows(ir.TokenList.of(x, ir.Range(y, x))), ir.Random(x, seed=y)):
        assert P(node.sap()) == node
