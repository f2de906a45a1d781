"""Every example runs, at its smallest size, as a newcomer would run it (a fresh process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))


def run(script: str, out: Path) -> str:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250"}  # rich tables: no wrapped names
    res = subprocess.run([sys.executable, str(EXAMPLES / script), "--small", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=out)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr
    return res.stdout


def test_there_are_four_examples() -> None:
    assert SCRIPTS == ["01_write_and_report.py", "02_compile_and_call.py", "03_train_tiny.py",
                       "04_compare_costs.py"]


def test_01_write_and_report(tmp_path: Path) -> None:
    out = run("01_write_and_report.py", tmp_path)
    assert "exports local_global, longformer_random" in out
    assert (tmp_path / "my_pattern.sap").exists()
    page = (tmp_path / "my_pattern.html").read_text()
    assert page.count("<img") >= 9 and "longformer_random" in page


def test_02_compile_and_call(tmp_path: Path) -> None:
    out = run("02_compile_and_call.py", tmp_path)
    found = re.findall(r"max \|compiled - (?:patternc.attention|reference)\| = ([0-9.e+-]+)", out)
    errs = [float(x) for x in found]
    assert len(errs) == 4 and max(errs) <= 1e-3, out


def test_03_train_tiny(tmp_path: Path) -> None:
    out = run("03_train_tiny.py", tmp_path)
    losses = [float(x) for x in re.findall(r"step +\d+ +loss ([0-9.]+)", out)]
    assert len(losses) >= 2, out
    assert "(window(8, 0) | strided(8)) & causal" in out


@pytest.mark.parametrize("script", ["04_compare_costs.py"])
def test_04_compare_costs(script: str, tmp_path: Path) -> None:
    out = run(script, tmp_path)
    assert "dense_causal" in out and "Θ(n^2)" in out and "sqrt n)" in out  # the text table
    page = (tmp_path / "compare_costs.html").read_text()
    names = ["dense_causal", "sliding_window", "longformer", "sparse_transformer_strided"]
    assert re.findall(r"<h2>(\w+)</h2>", page) == names
