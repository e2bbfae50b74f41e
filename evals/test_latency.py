"""Per-item latency through the whole harness (frames + engine + scoring), with
pytest-benchmark. Deselected by default; run with ``pytest evals -m benchmark``."""

import pytest


@pytest.mark.benchmark(group="item-latency")
def test_item_latency(benchmark, vlm_item, vlm_evaluator):
    record = benchmark.pedantic(vlm_evaluator.evaluate, args=(vlm_item,), rounds=3, iterations=1, warmup_rounds=1)
    assert record.error is None, record.error
