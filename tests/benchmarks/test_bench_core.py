"""Benchmarks of the harness itself (pytest-benchmark; run with ``pytest -m benchmark``)."""

import pytest

from conftest import COLOUR_MP4, SMOKE_JSONL
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.utils.video import select_frames

pytestmark = pytest.mark.benchmark


@pytest.mark.benchmark(group="sampler")
@pytest.mark.parametrize("max_frames", [8, 32])
@pytest.mark.parametrize("reader", ["decord", "opencv"])
def test_sampler(benchmark, reader, max_frames):
    frames, meta = benchmark(select_frames, COLOUR_MP4, max_frames, reader=reader)
    assert len(frames) == max_frames and meta.reader == reader


@pytest.mark.benchmark(group="harness")
def test_mock_item_end_to_end(benchmark):
    """Frames + mock engine + scoring + record for one video item: the harness's own cost."""
    run = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    samples = load_samples(run.datasets[0])
    evaluator = Evaluator(run, samples)
    evaluator.load()
    record = benchmark(evaluator.evaluate, samples[0])
    assert record.passed
