"""The ``patternc`` command line: every command, its outputs and its exit codes (0 ok, 1 the
input is wrong, 2 the command line is wrong), and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from patternc import ir
from patternc.cli import main

BAD = Path(__file__).parent / "fixtures" / "bad"
STDLIB = Path(__file__).parent.parent / "patternc" / "stdlib_patterns"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def two(tmp_path: Path) -> Path:
    path = tmp_path / "two.sap"
    path.write_text("pattern local = band(2)\npattern sinks(k = 1) = cols([0..k]) & causal\n"
                    "pattern f(w) = band(w)\n")
    return path


def test_check_ok_and_bad(capsys: pytest.CaptureFixture[str], two: Path) -> None:
    code, out, err = run(capsys, "check", str(two))
    assert code == 0 and "ok" in out and "local, sinks" in out and err == ""
    code, out, err = run(capsys, "check", str(BAD / "range_dilation.sap"))
    assert code == 1 and "error[SAP201]: dilation must be >= 1, got 0" in err and "^^^^" in err
    code, _, err = run(capsys, "check", str(BAD / "syn_several.sap"))
    assert code == 1 and err.count("error[") == 3 and "3 errors" in err


def test_check_warns_about_arguments_out_of_range(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "w.sap"
    path.write_text("pattern p = strided(n // 8192) | band(1)\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 0 and "warning[SAP601]" in err and "n=4096" in err
    code, _, err = run(capsys, "check", str(path), "--n", "16384")
    assert code == 0 and "warning" not in err


def test_check_warns_about_empty_rows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "e.sap"
    path.write_text("pattern ok = causal\npattern lonely = rows([0..8]) & causal\n")
    code, _, err = run(capsys, "check", str(path), "--n", "64")
    assert code == 0
    assert "warning[SAP602]: pattern 'lonely' has 56 query row(s) with no keys at n=64" in err
    assert "'ok'" not in err


def test_mask_npy_matches_the_reference(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "m.npy"
    code, _, _ = run(capsys, "mask", "-e", "band(1) | global([0])", "--n", "5", "--nk", "7", "-o", str(out))
    assert code == 0
    got = np.load(out)
    want = (ir.Band(1) | ir.Global(ir.TokenList.of(0))).mask(5, nk=7).numpy()
    assert got.dtype == bool and got.shape == (5, 7) and (got == want).all()


def test_mask_heads_and_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "h.npy"
    h2 = ["mask", "-e", "heads(causal, band(0))", "--n", "4", "-o", str(out)]
    code, _, _ = run(capsys, *h2, "--heads", "4")
    assert code == 0 and np.load(out).shape == (4, 4, 4)
    code, _, err = run(capsys, *h2)
    assert code == 2 and "--heads" in err
    code, _, err = run(capsys, *h2, "--heads", "3")
    assert code == 1 and "multiple" in err
    png = tmp_path / "m.png"
    lf = str(STDLIB / "longformer.sap")
    code, _, _ = run(capsys, "mask", lf, "--pattern", "longformer(w=4)", "--n", "16", "-o", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_choosing_a_pattern(capsys: pytest.CaptureFixture[str], two: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.npy"
    code, _, err = run(capsys, "mask", str(two), "--n", "4", "-o", str(out))
    assert code == 2 and "--pattern" in err and "local, sinks" in err
    code, _, err = run(capsys, "mask", str(two), "--pattern", "nope", "--n", "4", "-o", str(out))
    assert code == 2 and "no pattern 'nope'" in err
    code, _, _ = run(capsys, "mask", str(two), "--pattern", "sinks", "--n", "4", "-o", str(out))
    sinks = ir.Cols(ir.TokenList.range(0, 1)) & ir.Causal()
    assert code == 0 and np.load(out).tolist() == sinks.mask(4).tolist()
    code, _, _ = run(capsys, "mask", str(two), "--pattern", "f(w=1) & local", "--n", "4", "-o", str(out))
    assert code == 0 and np.load(out).tolist() == ir.Band(1).mask(4).tolist()
    code, _, err = run(capsys, "mask", str(two), "--pattern", "f(w=-1)", "--n", "4", "-o", str(out))
    assert code == 1 and "SAP201" in err
    only = tmp_path / "only.sap"
    only.write_text("pattern f(w) = band(w)\n")
    code, _, err = run(capsys, "mask", str(only), "--n", "4", "-o", str(out))
    assert code == 1 and "exports no pattern" in err and "f(w)" in err


@pytest.mark.parametrize("argv", [
    [], ["frob"], ["mask", "-e", "causal", "--n", "4"], ["mask", "-e", "causal", "--n", "0", "-o", "x.npy"],
    ["mask", "-e", "causal", "--n", "four", "-o", "x.npy"],
    ["mask", "-e", "causal", "--n", "4", "-o", "x.txt"],
    ["mask", "--n", "4", "-o", "x.npy"], ["mask", "f.sap", "-e", "causal", "--n", "4", "-o", "x.npy"],
    ["mask", "-e", "causal", "--pattern", "p", "--n", "4", "-o", "x.npy"],
    ["mask", "-e", "causal", "--n", "1000000", "-o", "x.npy"],
    ["report", "-e", "causal"], ["report", "-e", "causal", "--n", "1,x"], ["check"],
    ["report", "-e", "causal", "--n", "4", "--json", "--html", "x.html"],
])
def test_command_line_mistakes_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err


def test_bad_input_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "mask", "-e", "band(3", "--n", "4", "-o", str(tmp_path / "x.npy"))
    assert code == 1 and "<expr>:1:4: error[SAP103]" in err
    code, _, err = run(capsys, "check", str(tmp_path / "missing.sap"))
    assert code == 1 and "SAP503" in err
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == 1 and "SAP503" in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--help")[0] == 0
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("patternc ")


def test_report_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "-e", "band(4) | global([0])", "--n", "64,128", "--block", "16", "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    doc = json.loads(out)
    assert [r["n"] for r in doc["reports"]] == [64, 128] and doc["block"] == 16
    want = (ir.Band(4) | ir.Global(ir.TokenList.of(0))).mask(64).sum().item()
    assert doc["reports"][0]["nnz"] == want and doc["reports"][0]["pattern"] == "band(4) | global([0])"


def test_report_text_and_every_exported_pattern(capsys: pytest.CaptureFixture[str], two: Path) -> None:
    code, out, _ = run(capsys, "report", str(two), "--n", "256")
    assert code == 0 and "local" in out and "sinks" in out


def test_report_html(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    argv = ["report", "-e", "band(2) & causal", "--n", "64", "--block", "16", "--html", str(page)]
    code, _, _ = run(capsys, *argv)
    assert code == 0 and "<html" in page.read_text().lower()


def test_compile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "compile", str(STDLIB / "longformer.sap"), "-o", str(tmp_path))
    assert code == 0 and (tmp_path / "longformer.py").is_file() and "wrote" in out
    code, _, err = run(capsys, "compile", str(BAD / "undefined_name.sap"), "-o", str(tmp_path))
    assert code == 1 and "SAP301" in err


def test_console_script_exit_codes() -> None:
    exe = Path(sys.executable).parent / "patternc"
    bad = subprocess.run([str(exe), "check", str(BAD / "syn_several.sap")], capture_output=True, text=True)
    assert bad.returncode == 1 and "error[SAP101]" in bad.stderr and "Traceback" not in bad.stderr
    usage = subprocess.run([str(exe), "mask", "-e", "causal"], capture_output=True, text=True)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_check_several_files(capsys: pytest.CaptureFixture[str], two: Path) -> None:
    files = [str(two), str(BAD / "undefined_name.sap"), str(STDLIB / "dense.sap")]
    code, out, err = run(capsys, "check", *files)
    assert code == 1 and "SAP301" in err
    assert out.count(": ok,") == 2
