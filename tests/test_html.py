"""The HTML report: self-contained, the right numbers, and it renders in a real headless browser."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import patternc
from patternc import ir
from patternc.cli import main as cli
from patternc.html import load_timings, write_html
from patternc.reference import mask as ref_mask

NS = [64, 256, 1024]
ITEMS = [
    ("longformer+random", patternc.pattern("band(8) | global([0, 3]) | random_blocks(2, 16, seed=1)")),
    ("strided heads", patternc.pattern("heads(window(sqrt(n), 0), strided(sqrt(n))) & causal")),
]
RECORDS = [{"pattern": ITEMS[0][1].sap(), "n": n, "system": system, "direction": "fwd", "ms": ms,
            "device": "NVIDIA H100"} for n in NS for system, ms in (("patternc", n / 500), ("flex", n / 300))]


class Page(HTMLParser):
    """The images (decoded PNGs), headings and table cells of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[np.ndarray] = []
        self.external: list[str] = []
        self.h2: list[str] = []
        self.cells: list[str] = []
        self._tag = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag = tag
        a = dict(attrs)
        for key in ("src", "href"):
            v = a.get(key) or ""
            if v and not v.startswith("data:"):
                self.external.append(v)
        if tag == "img":
            data = (a.get("src") or "").removeprefix("data:image/png;base64,")
            self.images.append(imread(io.BytesIO(base64.b64decode(data)), format="png"))

    def handle_data(self, data: str) -> None:
        if self._tag == "h2":
            self.h2.append(data)
        elif self._tag == "td":
            self.cells.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._tag = ""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    return write_html(out, ITEMS, NS, block=16, timings=RECORDS)


def test_page_is_self_contained_with_every_picture(page: Path) -> None:
    doc = Page(page.read_text())
    assert doc.external == []  # nothing outside the file: no scripts, styles or images to fetch
    assert doc.h2 == [label for label, _ in ITEMS]
    # overview + (mask, block layout, degrees, cost) per pattern + one timing plot (recorded runs)
    assert len(doc.images) == 1 + 4 * len(ITEMS) + 1
    for img in doc.images:
        assert img.shape[0] > 50 and img.shape[1] > 50
        assert img[..., :3].std() > 0.05  # not a blank picture


def test_table_numbers_are_the_patterns(page: Path) -> None:
    cells = Page(page.read_text()).cells
    for _label, node in ITEMS:
        heads = ir.head_counts(node) if ir.head_counts(node) > 1 else None
        for n in NS:
            nnz = int(ref_mask(node, n, heads=heads).sum())
            assert f"{nnz:,}" in cells, (node.sap(), n, nnz)
    assert cells.count("Θ(n sqrt n)") + cells.count("O(n sqrt n)") == len(NS)


def test_timings_are_read_from_benchmarks(tmp_path: Path) -> None:
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "h100.json").write_text(json.dumps({"records": RECORDS}))
    (tmp_path / "benchmarks" / "broken.json").write_text("{not json")
    (tmp_path / "benchmarks" / "other.json").write_text(json.dumps([{"unrelated": 1}]))
    assert load_timings(tmp_path) == RECORDS


def test_timings_from_a_benchmark_table(tmp_path: Path) -> None:
    # the shape benchmarks/bench_*.py write: meta + rows with <system>[_bwd]_ms columns
    (tmp_path / "benchmarks").mkdir()
    rows = [{"N": 4096, "pattern": "band(256) | global([0..16])", "ours_ms": 0.5, "flex_ms": 9.3,
             "sdpa_cudnn_causal_ms": 2.0, "ours_bwd_ms": 1.5, "plan_ms": 3.0, "nnz": 123}]
    (tmp_path / "benchmarks" / "bench_forward.json").write_text(
        json.dumps({"meta": {"gpu": "NVIDIA H100 80GB HBM3", "date": "2026-11-22 08:12 UTC"}, "rows": rows}))
    got = sorted(load_timings(tmp_path), key=lambda r: (r["system"], r["direction"]))
    assert [(r["system"], r["direction"], r["ms"]) for r in got] == [
        ("flex", "fwd", 9.3), ("patternc", "bwd", 1.5), ("patternc", "fwd", 0.5),
        ("sdpa cudnn causal", "fwd", 2.0)]
    assert {r["device"] for r in got} == {"NVIDIA H100 80GB HBM3"} and {r["n"] for r in got} == {4096}
    assert {r["date"] for r in got} == {"2026-11-22 08:12 UTC"}
    # the page matches records to patterns by canonical text: extra spaces and parentheses do not matter
    page = write_html(tmp_path / "t.html", [("lf", patternc.pattern("band(256)|(global([0..16]))"))], [64],
                      block=16, timings=got)
    assert "Measured on NVIDIA H100 80GB HBM3" in page.read_text()


def test_cli_report_html_and_mask_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no recorded benchmarks/ here: exactly the four pictures
    src = tmp_path / "p.sap"
    src.write_text("pattern local(w = 4) = band(w) & causal\n")
    assert cli(["report", str(src), "--n", "64,128", "--html", str(tmp_path / "r.html")]) == 0
    doc = Page((tmp_path / "r.html").read_text())
    assert doc.h2 == ["local"] and len(doc.images) == 4
    assert cli(["mask", str(src), "--n", "32", "-o", str(tmp_path / "m.png")]) == 0
    img = imread(str(tmp_path / "m.png"))
    assert img.shape[0] == img.shape[1] and img.shape[0] >= 32


def test_bad_n_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        write_html(tmp_path / "x.html", ITEMS[:1], [], block=16)


# ---------------------------------------------------------------- a real browser

_CHECK = """<script>
window.addEventListener("load", () => {
  const out = [...document.images].map(img => {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext("2d"); let dark = 0;
    if (img.naturalWidth > 0) {
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] < 600) dark++;
    }
    return {complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, dark: dark};
  });
  const pre = document.createElement("pre"); pre.id = "checked";
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def browser() -> str:
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        msg = "Chromium is not installed (Debian: apt-get install chromium); the HTML report test needs it"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def run_browser(exe: str, tmp: Path, *args: str) -> str:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_page_renders_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    exe = browser()
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _CHECK + "</body>"))
    dom = run_browser(exe, tmp_path, "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000",
                      "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="checked">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    images = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(images) == 1 + 4 * len(ITEMS) + 1
    for img in images:
        assert img["complete"] and img["w"] > 50 and img["h"] > 50
        assert img["dark"] > 0.001 * img["w"] * img["h"]  # something is drawn

    shot = tmp_path / "shot.png"
    run_browser(exe, tmp_path, "--hide-scrollbars", "--window-size=1280,1400", f"--screenshot={shot}",
                page.as_uri())
    px = imread(str(shot))[..., :3]
    assert px.shape[:2] == (1400, 1280)
    assert (px.sum(-1) < 1.5).mean() > 0.01  # text and pictures, not a blank page
