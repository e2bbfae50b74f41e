"""Prefetch: while the engine answers item k, the next items' frames decode in a background
thread, so a run takes about max(decode, generate) per item instead of their sum.
Run with ``pytest -m benchmark tests/benchmarks/test_bench_long_runs.py``."""

import time

import numpy as np
import pytest

from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.utils.synthetic import indexed_frame, write_video

pytestmark = pytest.mark.benchmark
ITEMS = 6


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """Six 640x360 H.264 clips (decoding 32 frames of one takes ~100 ms here) and a mock
    engine that sleeps about as long per item."""
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
    start = time.perf_counter()
    for s in samples:
        probe.media(s)
    decode_ms = (time.perf_counter() - start) * 1000 / ITEMS
    (root / "slow.yaml").write_text(f"family: mock\ndelay_ms: {decode_ms:.0f}\n")
    return root, decode_ms


def run_items(root, prefetch: int) -> float:
    cfg = build_run_config(model=str(root / "slow.yaml"), datasets=[str(root / "data.jsonl")],
                           video_overrides={"max_frames": 32}, prefetch=prefetch)
    samples = load_samples(cfg.datasets[0])
    ev = Evaluator(cfg, samples)
    ev.load()
    start = time.perf_counter()
    for i, sample in enumerate(samples):  # the plugin's order: queue the next frames, then answer
        ev.prefetch(samples[i + 1 : i + 1 + prefetch])
        assert ev.evaluate(sample).error is None
    ev.close()
    return time.perf_counter() - start


@pytest.mark.benchmark(group="prefetch")
@pytest.mark.parametrize("prefetch", [0, 2])
def test_run_wall_time(benchmark, workload, prefetch):
    root, _ = workload
    benchmark.pedantic(run_items, args=(root, prefetch), rounds=3, iterations=1)


def test_prefetch_overlaps_decode_and_generate(workload):
    root, decode_ms = workload
    sequential = min(run_items(root, 0) for _ in range(2))
    overlapped = min(run_items(root, 2) for _ in range(2))
    ideal = ITEMS * decode_ms / 1000  # generate takes about as long as decode: max(d, g) per item
    print(f"decode {decode_ms:.0f} ms/item; no prefetch {sequential:.2f} s, prefetch {overlapped:.2f} s, "
          f"max(decode, generate) bound {ideal:.2f} s, speedup {sequential / overlapped:.2f}x")
    assert overlapped < 0.75 * sequential
    assert overlapped < 1.35 * ideal + decode_ms / 1000  # the first item's frames cannot overlap
