"""``patternc compile``: generated modules rebuild the IR, import without the frontend, and run
the same kernels as ``patternc.attention`` (Triton's interpreter on the CPU)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import given

import patternc
from patternc import ir, reference
from patternc.compiler import compile_file, function_name, module_name, python_expr

from .strategies import patterns

STDLIB = sorted((Path(patternc.__file__).parent / "stdlib_patterns").glob("*.sap"))

SAP_FILE = """
# two exported patterns, one that needs an argument (not exported)
pattern local(w = 3) = band(w) & causal
pattern mixed = heads(band(n // 8), strided(5) & causal) | global([0..2]) | random(2, seed = 4)
pattern needs(w) = band(w)
"""


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"compiled_{path.stem}_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@given(patterns(symbolic=True, heads=True))
def test_python_expr_rebuilds_the_ir(node: ir.Node) -> None:
    assert eval(python_expr(node), {"_ir": ir}) == node


def test_names_are_importable() -> None:
    assert module_name(Path("dir/long-former.v2.sap")) == "long_former_v2"
    assert module_name(Path("2d.sap")) == "_2d"
    assert function_name("lambda") == "lambda_" and function_name("SAP") == "SAP_"
    assert function_name("longformer") == "longformer"


def test_compiled_module_exposes_exported_patterns(tmp_path: Path) -> None:
    src = tmp_path / "my-model.sap"
    src.write_text(SAP_FILE)
    (out,) = compile_file(src, tmp_path / "out")
    assert out == tmp_path / "out" / "my_model.py"
    mod = _import(out)
    prog = patternc.load(src)
    assert mod.__all__ == ["local", "mixed"]
    assert mod.PATTERNS == prog.exported
    assert mod.SAP == {k: v.sap() for k, v in prog.exported.items()}
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 30, 16, generator=gen)
    k, v = torch.randn(2, 1, 2, 41, 16, generator=gen)
    out_, lse = mod.mixed(q, k, v, return_lse=True)
    want = reference.attention(q, k, v, prog.exported["mixed"])
    torch.testing.assert_close(out_, want, atol=2e-4, rtol=2e-4)
    assert lse.shape == (1, 4, 30)
    want = reference.attention(q, k, v, prog.exported["local"], scale=0.5)
    torch.testing.assert_close(mod.local(q, k, v, scale=0.5), want, atol=2e-4, rtol=2e-4)


def test_bad_files_raise_sap_errors_and_write_nothing(tmp_path: Path) -> None:
    src = tmp_path / "bad.sap"
    src.write_text("pattern p = band(3) | dilated(4, 0)\n")
    with pytest.raises(patternc.SapError):
        compile_file(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


_CHILD = """
import sys
sys.modules["lark"] = None  # the compiled module must not need the frontend
import importlib.util, torch
spec = importlib.util.spec_from_file_location("my_model", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
from patternc import reference
q = torch.randn(2, 2, 37, 32)
out = mod.local(q, q, q)
torch.testing.assert_close(out, reference.attention(q, q, q, mod.PATTERNS["local"]), atol=2e-4, rtol=2e-4)
assert "patternc.frontend" not in sys.modules
print("ok")
"""


def test_two_processes_fill_one_cache_without_the_frontend(tmp_path: Path) -> None:
    src = tmp_path / "my_model.sap"
    src.write_text(SAP_FILE)
    (out,) = compile_file(src, tmp_path)
    env = {**os.environ, "PATTERNC_CACHE_DIR": str(tmp_path / "cache"), "TRITON_INTERPRET": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(out)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        assert stdout.strip() == "ok"
    files = sorted(p.name for p in (tmp_path / "cache" / "forward").iterdir())
    assert len(files) == 1 and files[0].endswith(".py"), files  # one complete file, no temporaries
    compile((tmp_path / "cache" / "forward" / files[0]).read_text(), files[0], "exec")


@pytest.mark.parametrize("path", STDLIB, ids=[p.stem for p in STDLIB])
def test_stdlib_compiles_and_runs(path: Path, tmp_path: Path) -> None:
    (out,) = compile_file(path, tmp_path)
    mod = _import(out)
    prog = patternc.load(path)
    assert mod.PATTERNS == prog.exported
    gen = torch.Generator().manual_seed(1)
    for name, node in prog.exported.items():
        H = 2 * ir.head_counts(node)
        q = torch.randn(1, H, 40, 16, generator=gen)
        k, v = torch.randn(2, 1, H // 2, 70, 16, generator=gen)
        got = getattr(mod, function_name(name))(q, k, v)
        torch.testing.assert_close(got, reference.attention(q, k, v, node), atol=2e-4, rtol=2e-4)
