"""vlm-bench report, compare and the progress line."""

import base64
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import EVAL_TEST, REPO, SMOKE_JSONL
from vlm_bench.compare import compare_runs, frames_sweep, mcnemar_exact
from vlm_bench.progress import progress_line
from vlm_bench.report import build_report

VLM_BENCH = str(Path(sys.executable).with_name("vlm-bench"))
QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture
def runs(pytester, tmp_path):
    """Three smoke runs: a clean one, one with two wrong answers, one at 4 frames."""
    pytester.makepyfile(test_report_items=EVAL_TEST)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text('family: mock\nresponses: {square_direction: "left", colour_last: "(A)"}\n')
    out = {}
    for name, args in (("clean", ()), ("wrong", ("--model", str(wrong))), ("frames4", ("--max-frames", "4")),
                       ("frames16", ("--max-frames", "16"))):
        out[name] = tmp_path / name
        pytester.runpytest_inprocess(*QUIET, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out[name]), *args)
    return out


def images_in(page: str) -> dict[str, np.ndarray]:
    found = {}
    for alt, data in re.findall(r"<img alt='([^']*)' src='data:image/png;base64,([^']+)'", page):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None, alt
        found[alt] = img
    return found


@pytest.mark.smoke
def test_report_is_self_contained_with_plots_and_failed_frames(runs):
    markdown, page = build_report(runs["wrong"])
    assert (runs["wrong"] / "report.html").read_text() == page
    assert "| overall | 7 | 9 | 77.8% |" in markdown
    assert "## Failed items (2)" in markdown and "| square_direction | smoke | left | right |" in markdown
    images = images_in(page)
    assert set(images) == {"categories", "latency", "frames of square_direction", "frames of colour_last"}
    strip = images["frames of square_direction"]  # the 8 sampled frames, 96 px high, side by side
    assert strip.shape[0] == 96 and strip.shape[1] == 8 * 128
    assert "src='http" not in page and "<script" not in page  # nothing fetched from elsewhere
    assert "prediction: left" in page and "answer: right" in page
    assert (runs["wrong"] / "categories.png").exists() and (runs["wrong"] / "latency.png").exists()


def test_report_cli(runs):
    proc = subprocess.run([VLM_BENCH, "report", str(runs["clean"])], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (runs["clean"] / "report.md").exists() and "Failed items (0)" in (runs["clean"] / "report.md").read_text()
    missing = subprocess.run([VLM_BENCH, "report", str(runs["clean"] / "nope")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "cannot report on" in missing.stderr and "no such folder" in missing.stderr


def test_compare_flips_and_mcnemar(runs):
    c = compare_runs(runs["clean"], runs["wrong"])
    assert c["compared"] == 9
    assert c["passed_in_a_failed_in_b"] == ["smoke/colour_last", "smoke/square_direction"]
    assert c["failed_in_a_passed_in_b"] == []
    assert round(c["difference"], 4) == round(-2 / 9, 4)
    assert c["mcnemar_p"] == 0.5  # 2 discordant pairs, both one way: 2 * 0.5^2
    assert {"model", "model_config.responses.colour_last", "model_config.responses.square_direction"} <= set(c["settings_differ"])
    proc = subprocess.run([VLM_BENCH, "compare", str(runs["clean"]), str(runs["wrong"])], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "McNemar exact p = 0.5" in proc.stdout and "passed in A, failed in B: smoke/square_direction" in proc.stdout


def test_mcnemar_exact_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert abs(mcnemar_exact(0, 10) - 2 * 0.5**10) < 1e-12
    assert abs(mcnemar_exact(2, 8) - 0.109375) < 1e-9  # 2 * P(X<=2), X~Bin(10, .5) = 2 * 56/1024


def test_frames_sweep_plot(runs, tmp_path):
    points = frames_sweep([runs["frames16"], runs["clean"], runs["frames4"]])
    assert [p["max_frames"] for p in points] == [4, 8, 16]  # mock.yaml samples 8 frames by default
    with pytest.raises(ValueError, match="more than max_frames"):
        frames_sweep([runs["clean"], runs["wrong"]])
    plot = tmp_path / "sweep.png"
    proc = subprocess.run([VLM_BENCH, "compare", str(runs["frames4"]), str(runs["clean"]), str(runs["frames16"]), "--plot", str(plot)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "max_frames   4: pass rate 100.0%" in proc.stdout
    img = cv2.imread(str(plot))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 300


def test_progress_line():
    assert progress_line(120, 2700, 80, 100, 600) == (
        "vlm-bench: 120/2700 items (4%), pass rate 80.0% so far, 10m00s elapsed, ETA 3h35m")
    assert progress_line(0, 10, 0, 0, 1) == "vlm-bench: 0/10 items (0%), no scored item yet, 0m01s elapsed"


def test_progress_shown_only_when_asked_or_on_a_terminal(pytester):
    pytester.makepyfile(test_report_items=EVAL_TEST)
    shown = pytester.runpytest_inprocess(*QUIET, "--dataset", str(SMOKE_JSONL), "--results-dir", str(pytester.path / "a"),
                                         "--progress", "always", "--progress-interval", "0")
    shown.stdout.fnmatch_lines(["vlm-bench: 1/9 items (11%), pass rate 100.0% so far, *", "vlm-bench: 9/9 items (100%), *"])
    quiet = pytester.runpytest_inprocess(*QUIET, "--dataset", str(SMOKE_JSONL), "--results-dir", str(pytester.path / "b"))
    assert "items (" not in quiet.stdout.str()  # auto: pytester's output is not a terminal


def test_importing_vlm_bench_imports_no_torch():
    code = ("import sys, vlm_bench, vlm_bench.pytest_plugin, vlm_bench.cli, vlm_bench.registry, vlm_bench.runners;"
            "bad = [m for m in ('torch', 'transformers', 'vlmeval', 'bitsandbytes') if m in sys.modules];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_progress_bar_on_a_terminal(tmp_path):
    """On a terminal (a pty here) at normal verbosity: a bar with rate and ETA redrawn in
    place, and no outcome letters for the items to break it up."""
    import os
    import pty

    slow = tmp_path / "slow.yaml"
    slow.write_text("family: mock\ndelay_ms: 50\nresponses: {square_direction: left}\n")
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(REPO / "evals"), *QUIET, "--dataset", str(SMOKE_JSONL), "--model", str(slow),
         "--results-dir", str(tmp_path / "o")],
        cwd=tmp_path, stdin=follower, stdout=follower, stderr=follower, env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 1, text  # square_direction fails
    bars = re.findall(r"vlm-bench:\s+(\d+)%\|[^|]*\| (\d)/9 \[[^\]]*item/s, ([^\]]*)\]", text)
    assert [int(done) for _, done, _ in bars] == list(range(1, 10)), text
    assert bars[-1][0] == "100" and bars[-1][2] == "pass rate 88.9% so far"
    assert "<" in text.split("2/9 [", 1)[1].split("]", 1)[0]  # elapsed<remaining: an ETA
    assert not re.search(r"test_video_qa\.py [.F]", text)  # no outcome letters
    assert "square_direction: scorer normalized gave 0.0" in text  # the failure is still reported
