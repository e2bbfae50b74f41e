"""report.html in a real browser: headless Chromium (Debian's `chromium`; .ci/run installs
it when absent) opens the page at 1280 px. No console error, every image loads, nothing
is wider than the window, and a screenshot is kept as a test artifact
(``$VLM_BENCH_TEST_ARTIFACTS``, default ``test-artifacts/``)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EVAL_TEST, REPO, SMOKE_JSONL
from vlm_bench.report import build_report

WIDTH = 1280
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
)
# Runs in the page before anything else: collects errors, then (on load, with the manifest
# unfolded) what loaded and what sticks out, into a <pre> that --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(
  e.message || ('failed to load ' + ((e.target && (e.target.src || e.target.href)) || '?')).slice(0, 200)), true);
window.addEventListener('unhandledrejection', e => window.__errors.push('unhandled rejection: ' + e.reason));
for (const level of ['error', 'warn']) {
  const original = console[level];
  console[level] = (...args) => { window.__errors.push('console.' + level + ': ' + args.join(' ')); original(...args); };
}
window.addEventListener('load', () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const width = document.documentElement.clientWidth;
  const overflowing = [...document.body.querySelectorAll('*')]
    .filter(el => el.getBoundingClientRect().right > width + 0.5)
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ' ' + (el.alt || el.textContent || '').slice(0, 60));
  const images = [...document.images].map(img => ({alt: img.alt, loaded: img.complete && img.naturalWidth > 0,
    shown_width: img.getBoundingClientRect().width}));
  const out = document.createElement('pre');
  out.id = 'vlm-bench-probe';
  out.textContent = JSON.stringify({errors: window.__errors, images, overflowing, width,
    scroll_width: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def browser() -> str:
    path = chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the report test (.ci/run installs it)")
        pytest.skip("needs Debian's chromium (apt-get install -y chromium); CI installs it")
    return path


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},1000", *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A run built to stress the page: failed items with frame strips, an answer of 600
    characters without a space, a 70-character category name, a category of one item."""
    base = tmp_path_factory.mktemp("browser")
    lines = []
    for line in SMOKE_JSONL.read_text().splitlines():
        item = json.loads(line)
        for key in ("video",):
            if isinstance(item.get(key), str):
                item[key] = str(SMOKE_JSONL.parent / item[key])
        if "frames" in item:
            item["frames"] = [str(SMOKE_JSONL.parent / f) for f in item["frames"]]
        if item["id"] == "colour_first":
            item["category"] = "a-category-name-long-enough-to-push-any-fixed-layout-past-its-edge-x"
        lines.append(json.dumps(item))
    data = base / "stress.jsonl"
    data.write_text("\n".join(lines) + "\n")
    model = base / "wrong.yaml"
    model.write_text("family: mock\nresponses: {square_direction: '" + "left" * 150 + "', colour_last: '(A)'}\n")
    (base / "test_items.py").write_text(EVAL_TEST)
    out = base / "run"
    proc = subprocess.run(
        ["pytest", "-q", "-p", "no:cacheprovider", str(base / "test_items.py"), "--dataset", str(data),
         "--model", str(model), "--results-dir", str(out), "--rootdir", str(base)],
        cwd=base, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": str(Path(os.sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")},
    )
    assert (out / "summary.json").exists(), proc.stdout + proc.stderr
    build_report(out)
    return out


def probe_page(browser: str, page: str, folder: Path, profile: Path) -> dict:
    probed = folder / "report-probe.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    proc = run_chromium(browser, profile, "--dump-dom", "--virtual-time-budget=10000", probed.as_uri())
    found = re.search(r"<pre id=\"vlm-bench-probe\">(.*?)</pre>", proc.stdout, re.S)
    assert found, f"the page did not finish loading in chromium:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def probe(browser, report_dir, tmp_path_factory) -> dict:
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    return probe_page(browser, page, report_dir, tmp_path_factory.mktemp("profile"))


def test_the_probe_sees_what_is_wrong_with_a_broken_page(browser, tmp_path):
    page = ("<!doctype html><html><head><title>broken</title></head><body>"
            "<img alt='bad' src='data:image/png;base64,AAAA'><div style='width:2000px'>wide</div>"
            "<script>console.error('boom')</script></body></html>")
    found = probe_page(browser, page, tmp_path, tmp_path / "profile")
    assert "console.error: boom" in found["errors"] and any("failed to load" in e for e in found["errors"])
    assert found["images"][0]["loaded"] is False
    assert found["scroll_width"] > WIDTH and any(o.startswith("div") for o in found["overflowing"])


def test_no_console_or_load_error(probe):
    assert probe["errors"] == []


def test_every_image_loads_and_fits(probe):
    alts = {img["alt"] for img in probe["images"]}
    assert {"categories", "latency", "frames of square_direction", "frames of colour_last"} <= alts
    assert [img["alt"] for img in probe["images"] if not img["loaded"]] == []
    assert all(0 < img["shown_width"] <= probe["width"] for img in probe["images"])


def test_nothing_overflows_at_1280_px(probe):
    assert probe["width"] == WIDTH
    assert probe["overflowing"] == [] and probe["scroll_width"] <= probe["width"]


def test_screenshot_is_kept_as_an_artifact(browser, report_dir, tmp_path_factory):
    artifacts = Path(os.environ.get("VLM_BENCH_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report-1280.png"
    shot.unlink(missing_ok=True)
    proc = run_chromium(browser, tmp_path_factory.mktemp("profile"), f"--screenshot={shot}",
                        (report_dir / "report.html").as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[1] == WIDTH
