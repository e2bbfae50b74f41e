"""`pytest -m smoke` is a small subset along the end-to-end path (the evaluation items on
the mock engine, the CLI, the plugin's records, a report, a resume, the tiny native model),
not most of the suite. Its wall time (under 20 s on the 2-core reference machine) is for
CI to see; here its shape is checked."""

import subprocess
import sys

from conftest import REPO


def test_smoke_is_a_small_end_to_end_subset():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "smoke", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    selected = [line for line in proc.stdout.splitlines() if "::" in line]
    everything = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    ).stdout
    total = sum(1 for line in everything.splitlines() if "::" in line)
    assert len(selected) <= 30 and len(selected) * 5 < total, (
        f"pytest -m smoke selects {len(selected)} of {total} tests; it is a small end-to-end subset: "
        "mark single tests @pytest.mark.smoke, not whole modules (pytestmark)"
    )
    for part in ("evals/test_video_qa.py::test_video_qa[", "tests/test_cli.py::", "tests/test_plugin.py::",
                 "tests/test_report_compare.py::", "tests/test_long_runs.py::", "tests/test_native_backend.py::"):
        assert any(line.startswith(part) for line in selected), part
