"""Prefetch: while the engine answers item k, the next items' frames decode in a background
thread, so a run takes about max(total decode, total generate) instead of their sum.
24 640x360 clips (one question each, so nothing is shared) and a mock engine that
sleeps as long as one decode takes (its generate time, sleep and a pass over every pixel,
is read from the records). Run with
``pytest -m benchmark tests/benchmarks/test_bench_long_runs.py``."""

import statistics
import time

import numpy as np
import pytest

from perf_report import interleaved, report
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.frames import decode_frames
from vlm_bench.utils.synthetic import indexed_frame, write_video

pytestmark = pytest.mark.benchmark
ITEMS = 24


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """The clips, their total decode time (measured here) and a mock engine that sleeps as
    long per item as one decode takes."""
    root = tmp_path_factory.mktemp("prefetch")
    rng = np.random.default_rng(0)
    lines = []
    for k in range(ITEMS):
        base = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)  # noise: costly to decode
        write_video(root / f"v{k}.mp4", (indexed_frame(i, np.roll(base, i, axis=1)) for i in range(240)), fps=24,
                    options={"crf": "18", "preset": "ultrafast"})
        lines.append(f'{{"id": "q{k}", "video": "v{k}.mp4", "question": "q", "answer": "a"}}')
    (root / "data.jsonl").write_text("\n".join(lines) + "\n")
    probe = Evaluator(build_run_config(model="mock", datasets=[str(root / "data.jsonl")], video_overrides={"max_frames": 32}))
    samples = load_samples(probe.run.datasets[0])
    decode_s = []
    for _ in range(2):
        start = time.perf_counter()
        for s in samples:
            decode_frames(s, probe.video_config(s))
        decode_s.append(time.perf_counter() - start)
    total_decode = statistics.median(decode_s)
    (root / "slow.yaml").write_text(f"family: mock\ndelay_ms: {total_decode / ITEMS * 1000:.0f}\n")
    return root, total_decode


def run_items(root, prefetch: int) -> tuple[float, float]:
    """(wall seconds, seconds the engine spent generating, from the records)."""
    cfg = build_run_config(model=str(root / "slow.yaml"), datasets=[str(root / "data.jsonl")],
                           video_overrides={"max_frames": 32}, prefetch=prefetch)
    samples = load_samples(cfg.datasets[0])
    ev = Evaluator(cfg, samples)
    ev.load()
    start = time.perf_counter()
    generating = 0.0
    for i, sample in enumerate(samples):  # the plugin's order: queue the next frames, then answer
        ev.prefetch(samples[i + 1 : i + 1 + prefetch])
        record = ev.evaluate(sample)
        assert record.error is None
        generating += record.latency_ms / 1000
    ev.close()
    return time.perf_counter() - start, generating


def test_prefetch_wall_against_max_of_decode_and_generate(workload):
    root, total_decode = workload
    runs = interleaved({"off": lambda: run_items(root, 0), "on": lambda: run_items(root, 2)}, rounds=3)
    wall = statistics.median(w for w, _ in runs["on"])
    total_generate = statistics.median(g for _, g in runs["on"])  # the mock's sleep and its pass over every pixel
    bound = max(total_decode, total_generate)
    report("prefetch: wall / max(total decode, total generate)", wall / bound, 1.15,
           detail=f"({ITEMS} items: {wall:.2f} s with prefetch, {statistics.median(w for w, _ in runs['off']):.2f} s "
                  f"without; decode {total_decode:.2f} s, generate {total_generate:.2f} s)")
