"""The plugin is active in every pytest session of an environment where vlm-bench is
installed (pytest11 entry point). A session that uses no vlm-bench dataset must not pay for
it: no numpy, OpenCV or PyYAML import, no config resolved, until a test asks for it."""

import subprocess
import sys
import textwrap



HEAVY = ("numpy", "cv2", "yaml", "vlm_bench.config", "vlm_bench.evaluate")


def pytest_in(path, *args):
    (path / "pytest.ini").write_text("[pytest]\n")  # its own project: not this repository's settings
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=path, capture_output=True, text=True, timeout=120,
    )


def test_a_session_without_vlm_bench_data_imports_nothing_heavy(tmp_path):
    (tmp_path / "test_other_project.py").write_text(textwrap.dedent(f"""
        import sys

        def test_modules(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("vlm_bench")  # the entry point is active
            loaded = [m for m in {HEAVY!r} if m in sys.modules]
            assert loaded == []
    """))
    result = pytest_in(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vlm_bench_starts_when_a_test_asks_for_it(tmp_path):
    (tmp_path / "test_late.py").write_text(textwrap.dedent("""
        def test_plain():
            pass

        def test_config(vlm_run_config):
            assert vlm_run_config.model.name == "mock" and vlm_run_config.datasets == ()
    """))
    result = pytest_in(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "test_items.py").write_text("def test_item(vlm_item):\n    pass\n")
    result = pytest_in(tmp_path)
    assert result.returncode != 0 and "no dataset; pass --dataset" in result.stdout


def test_a_vlm_bench_option_starts_it_at_once(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    pass\n")
    result = pytest_in(tmp_path, "--model", "no-such-model")
    assert result.returncode == 4 and "unknown model 'no-such-model'" in result.stderr


def test_the_latency_benchmark_collects_its_items_only_when_selected():
    """evals/test_latency.py is deselected by default: one stand-in is collected, not a
    second copy of every item; -m benchmark collects them all (and one stand-in of the
    video-QA items, then deselected)."""
    import re

    from conftest import REPO, SMOKE_JSONL

    def collected(*args):
        out = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "evals"), "--dataset", str(SMOKE_JSONL),
                              "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                             cwd=REPO, capture_output=True, text=True, timeout=120).stdout
        total = int(re.search(r"\d+/(\d+) tests collected", out).group(1))
        return sum("test_latency.py::" in line for line in out.splitlines()), total, out

    latency, total, out = collected()
    assert latency == 0 and total < 9 + 9, out  # 9 items + 1 stand-in (+ other tests), not 9 + 9
    latency, total, out = collected("-m", "benchmark")
    assert latency == 9 and total < 9 + 9, out
