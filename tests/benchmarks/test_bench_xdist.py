"""pytest-xdist: items/s with ``-n 2`` against a single process, start-up included (each
run is a whole ``python -m pytest`` subprocess), on a mock engine that takes 200 ms per
item, over 16 videos of 20 questions each; runs side by side in rotating order, median of
the per-round ratios. Run with ``pytest -m benchmark tests/benchmarks/test_bench_xdist.py``."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from conftest import EVAL_TEST
from perf_report import interleaved, median_ratio, report
from test_bench_scale import pytest_run
from vlm_bench.utils.synthetic import indexed_frame, write_video

pytest.importorskip("xdist")
pytestmark = pytest.mark.benchmark
VIDEOS, QUESTIONS, DELAY_MS = 16, 20, 200


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("xdist-bench")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_video_qa.py").write_text(EVAL_TEST)
    (root / "slow.yaml").write_text(f"family: mock\ndelay_ms: {DELAY_MS}\n")
    rng = np.random.default_rng(0)
    lines = []
    for v in range(VIDEOS):
        base = rng.integers(40, 200, (96, 128, 3), dtype=np.uint8)
        write_video(root / f"v{v}.mp4", (indexed_frame(i, base) for i in range(48)), fps=24)
        lines += [json.dumps({"id": f"v{v}q{q}", "video": f"v{v}.mp4", "question": "q", "answer": "a"}) for q in range(QUESTIONS)]
    (root / "items.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_two_workers_against_one_process(project):
    count = [0]

    def run(*extra: str) -> dict:
        count[0] += 1
        result = pytest_run(project, "test_video_qa.py", "--dataset", "items.jsonl", "--model", "slow.yaml",
                            "--results-dir", f"out{count[0]}", *extra)
        assert f"{VIDEOS * QUESTIONS} passed" in result["out"]
        return result

    runs = interleaved({"one": lambda: run(), "two": lambda: run("-n", "2")}, rounds=2)
    speedup = median_ratio([r["wall"] for r in runs["one"]], [r["wall"] for r in runs["two"]])
    report("xdist -n 2 / one process, items per second (start-up included)", speedup, 1.7, higher_is_better=True,
           detail=f"({VIDEOS * QUESTIONS} items, {VIDEOS} videos, {DELAY_MS} ms each; wall "
                  f"{statistics.median(r['wall'] for r in runs['one']):.1f} s vs "
                  f"{statistics.median(r['wall'] for r in runs['two']):.1f} s)")
