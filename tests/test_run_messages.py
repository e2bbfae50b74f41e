"""What a first session prints: an engine that cannot load is explained once, at the top,
with the fix; "N deselected" says what was deselected; -n 2 prints no warning about
benchmarks that are not running anyway."""

import subprocess
import sys

import pytest

from conftest import EVAL_TEST, REPO, SMOKE_JSONL, read_jsonl
from vlm_bench.runners import load_failure_advice
from vlm_bench.runners.mock_backend import MockEngine


def run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


@pytest.mark.smoke
def test_an_engine_that_cannot_load_is_explained_once_with_the_fix(pytester, monkeypatch):
    def fail(self):
        raise RuntimeError("VLMEvalKit not installed: pip install 'vlm-bench[vlmeval]'")

    monkeypatch.setattr(MockEngine, "load", fail)
    pytester.makepyfile(test_items=EVAL_TEST)
    out = pytester.path / "o"
    result = run(pytester, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out))
    result.assert_outcomes(failed=9)
    text = result.stdout.str()
    reason = "VLMEvalKit not installed: pip install 'vlm-bench[vlmeval]'"
    first_failure = text.index("= FAILURES =")
    announcement = text.index("vlm-bench: the engine did not load, so every item fails")
    assert announcement < first_failure and load_failure_advice("mock") in text
    # the reason: once at the top and once in the summary, not once per item
    assert text.count(reason) == 2, text
    # one line per item in the failure reports; the short summary repeats it in full or cut to the
    # terminal width (pytest never cuts it when the CI variable is set), so it is left out of the count
    failures = text[first_failure:text.index("short test summary info")]
    assert failures.count("the engine did not load (the reason is at the top of this run)") == 9, failures
    assert all(reason in r["error"] for r in read_jsonl(out / "items.jsonl"))  # each record keeps it whole


def test_load_failure_advice_names_the_install_and_the_other_backends():
    advice = load_failure_advice("vlmeval")
    assert "pip install 'vlm-bench[vlmeval]'" in advice and "--backend native" in advice and "--backend mock" in advice
    assert "--backend vlmeval" not in advice
    assert "--backend vlmeval" in load_failure_advice("native")


def test_deselected_latency_benchmarks_are_explained():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "evals"), "--dataset", str(SMOKE_JSONL), "--collect-only", "-q",
         "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    # evals/test_latency.py is collected as one stand-in, not as a second copy of the nine items;
    # evals/test_generation.py runs only with --generator
    assert "2 deselected" in proc.stdout, proc.stdout
    assert "vlm-bench: 1 of the deselected is video generation, which runs with --generator" in proc.stdout
    assert "vlm-bench: 1 of the deselected are per-item latency benchmarks (one stand-in per test function instead of its 9 items)" in proc.stdout


def test_xdist_run_prints_no_benchmark_warning(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "evals"), "--dataset", str(SMOKE_JSONL), "-n", "2",
         "-p", "no:cacheprovider", "--results-dir", str(tmp_path / "o")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "9 passed" in proc.stdout and "warning" not in (proc.stdout + proc.stderr).lower()
