"""The harness at scale, against pytest's own floor: the same number of parametrized no-op
tests in a project of their own. Every run is a real ``python -m pytest`` subprocess (its
wall time, CPU time and peak RSS read with ``os.wait4``); contenders run side by side in
rotating order and the median of the per-round ratios is reported. Run with
``pytest -m benchmark tests/benchmarks/test_bench_scale.py`` (about ten minutes here)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import COLOUR_MP4, EVAL_TEST, SQUARE_MP4
from perf_report import interleaved, median_ratio, report

pytestmark = pytest.mark.benchmark


# pytest.main, then the process's own peak RSS (VmHWM: the high-water mark of the memory
# it has since exec; ru_maxrss would count this benchmark's own memory, copied at fork)
CHILD = (
    "import sys, pytest\n"
    "code = pytest.main(sys.argv[1:])\n"
    "peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "print('vlm-bench-peak-kib', peak[0] if peak else 0)\n"
    "sys.exit(code)\n"
)


def pytest_run(cwd: Path, *args: str) -> dict[str, float]:
    """One pytest run (``-q``) in a subprocess in ``cwd``: wall and CPU seconds, peak RSS
    in MiB. Bytecode is cached as in an installed package (pip compiles it; an environment
    with PYTHONDONTWRITEBYTECODE would compile vlm-bench's modules on every start)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "-q", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.stdout.close()
    assert os.waitstatus_to_exitcode(status) == 0, out[-3000:]
    peak = next(int(line.split()[1]) for line in out.splitlines() if line.startswith("vlm-bench-peak-kib"))
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": peak / 1024, "out": out}


def project(root: Path, items: int) -> Path:
    """A project of its own (no vlm-bench settings): the floor's no-op tests, the eval
    test, and ``items`` one-frame mock items over the two fixture clips."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_floor.py").write_text(
        f"import pytest\n\n\n@pytest.mark.parametrize('i', range({items}))\ndef test_noop(i):\n    pass\n"
    )
    (root / "test_video_qa.py").write_text(EVAL_TEST)
    clips = [str(SQUARE_MP4), str(COLOUR_MP4)]
    with open(root / "items.jsonl", "w") as fh:
        for i in range(items):
            fh.write(json.dumps({"id": f"q{i:06d}", "video": clips[i % 2], "question": "Where does it move?",
                                 "answer": "right", "scorer": "normalized", "category": f"c{i % 10}"}) + "\n")
    return root


def floor(root: Path, *extra: str) -> dict[str, float]:
    return pytest_run(root, "test_floor.py", "-p", "no:vlm_bench", *extra)


def items(root: Path, *extra: str, run: list[int] = [0]) -> dict[str, float]:  # noqa: B006 - a run counter
    run[0] += 1
    return pytest_run(root, "test_video_qa.py", "--dataset", "items.jsonl", "--max-frames", "1",
                      "--results-dir", f"out{run[0]}", *extra)


def test_mock_items_against_the_pytest_floor(tmp_path):
    """20,000 one-frame mock items through pytest and the plugin (frames, mock engine,
    scoring, a flushed record each, the summary) vs 20,000 no-op tests."""
    root = project(tmp_path / "p20k", 20_000)
    runs = interleaved({"floor": lambda: floor(root), "items": lambda: items(root)}, rounds=3)
    assert all("20000 passed" in r["out"] for r in runs["items"])
    wall = median_ratio([r["wall"] for r in runs["items"]], [r["wall"] for r in runs["floor"]])
    rss = median_ratio([r["rss"] for r in runs["items"]], [r["rss"] for r in runs["floor"]])
    detail = (f"(20,000 items; medians {statistics.median(r['wall'] for r in runs['items']):.1f} s vs "
              f"{statistics.median(r['wall'] for r in runs['floor']):.1f} s, "
              f"{statistics.median(r['rss'] for r in runs['items']):.0f} MiB vs "
              f"{statistics.median(r['rss'] for r in runs['floor']):.0f} MiB; 3 rounds)")
    report("mock items / pytest floor, wall time", wall, 1.8, detail=detail)
    report("mock items / pytest floor, peak RSS", rss, 1.5, detail=detail)


def test_cost_per_item_does_not_grow_with_the_number_of_items(tmp_path):
    """Per-item time at 100,000 items against 10,000 (look-ahead, summary, records: nothing
    per item may grow with N). CPU time of the run is the measure (the wall time of a
    three-minute run on a shared machine moves with everyone else's load); wall is shown."""
    small, large = project(tmp_path / "p10k", 10_000), project(tmp_path / "p100k", 100_000)
    runs = {"10k": [items(small)], "100k": [items(large)]}
    runs["10k"].append(items(small))
    per_item = {k: statistics.median(r["cpu"] for r in v) / (10_000 if k == "10k" else 100_000) for k, v in runs.items()}
    walls = {k: statistics.median(r["wall"] for r in v) / (10_000 if k == "10k" else 100_000) for k, v in runs.items()}
    report("CPU time per item, 100,000 / 10,000 items", per_item["100k"] / per_item["10k"], 1.10,
           detail=f"({per_item['100k'] * 1000:.2f} ms vs {per_item['10k'] * 1000:.2f} ms per item; wall "
                  f"{walls['100k'] * 1000:.2f} vs {walls['10k'] * 1000:.2f} ms)")


def test_collecting_100000_items_against_pytest(tmp_path):
    root = project(tmp_path / "p100k", 100_000)
    runs = interleaved({
        "floor": lambda: floor(root, "--collect-only"),
        "items": lambda: pytest_run(root, "test_video_qa.py", "--dataset", "items.jsonl", "--collect-only"),
    }, rounds=2)
    ratio = median_ratio([r["wall"] for r in runs["items"]], [r["wall"] for r in runs["floor"]])
    report("collecting 100,000 items / pytest collecting 100,000 tests", ratio, 2.0,
           detail=f"({statistics.median(r['wall'] for r in runs['items']):.1f} s vs "
                  f"{statistics.median(r['wall'] for r in runs['floor']):.1f} s)")


def test_loading_the_plugin_in_a_project_without_vlm_bench_data(tmp_path):
    """The pytest11 entry point loads the plugin into every pytest session: in a project
    that uses no vlm-bench dataset it must cost next to nothing. The cost is the CPU time
    a session spends with the plugin over one run with ``-p no:vlm_bench`` (start-up is
    CPU-bound; CPU time does not move with the other processes on a shared machine, wall
    time does by more than the cost: it is shown)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_other.py").write_text("def test_other():\n    pass\n")
    pytest_run(tmp_path)  # writes the bytecode caches, as installing does
    runs = interleaved({
        "without": lambda: pytest_run(tmp_path, "-p", "no:vlm_bench"),
        "with": lambda: pytest_run(tmp_path),
    }, rounds=25)
    diff = {k: statistics.median(a[k] - b[k] for a, b in zip(runs["with"], runs["without"])) for k in ("cpu", "wall", "rss")}
    report("plugin load in a session without vlm-bench data (CPU time)", diff["cpu"] * 1000, 50.0, unit=" ms",
           detail=f"(median of 25 interleaved pairs; wall {diff['wall'] * 1000:+.0f} ms, peak RSS {diff['rss']:+.1f} MiB)")
