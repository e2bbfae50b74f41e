"""Native backend on the tiny InternVL: per-item time through the harness (frames, prompt,
processor, generate, scoring, record) against a bare ``model.generate`` on the same inputs.
Run with ``pytest -m benchmark tests/benchmarks/test_bench_native.py``."""

import statistics
import time

import pytest

from conftest import SMOKE_JSONL
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator, load_media

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.benchmark
NEW_TOKENS = 256  # a short answer; the harness's cost per item is fixed, generation's grows


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    run = build_run_config(model="tiny-internvl3", datasets=[str(SMOKE_JSONL)], decode_overrides={"max_new_tokens": NEW_TOKENS})
    samples = load_samples(run.datasets[0])
    sample = next(s for s in samples if s.id == "square_direction")
    evaluator = Evaluator(run, samples)
    evaluator.load()
    engine = evaluator.adapter._engine
    media = load_media(sample, evaluator.video_config(sample))
    prompt = evaluator.adapter.build_prompt(sample, evaluator.datasets["smoke"])
    inputs = engine.prepare_inputs([(media, prompt)])
    tokens = evaluator.evaluate(sample).tokens

    def bare():
        with torch.inference_mode():
            return engine.model.generate(
                **inputs, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=engine.processor.tokenizer.pad_token_id
            )

    def harness():
        return evaluator.evaluate(sample)

    assert bare().shape[1] - inputs["input_ids"].shape[1] == tokens  # same work on both sides
    return bare, harness


@pytest.mark.benchmark(group="native-tiny")
def test_bare_generate(benchmark, tiny):
    bare, _ = tiny
    benchmark.pedantic(bare, rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="native-tiny")
def test_harness_item(benchmark, tiny):
    _, harness = tiny
    record = benchmark.pedantic(harness, rounds=10, warmup_rounds=1)
    assert record.error is None


def test_harness_adds_at_most_ten_percent(tiny):
    bare, harness = tiny
    times = {"bare": [], "harness": []}
    for _ in range(12):  # interleaved, so drift on a shared machine hits both alike
        for name, fn in (("bare", bare), ("harness", harness)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ratio = statistics.median(times["harness"]) / statistics.median(times["bare"])
    print(f"harness/bare per item: {ratio:.3f} ({statistics.median(times['harness']) * 1000:.1f} ms vs "
          f"{statistics.median(times['bare']) * 1000:.1f} ms)")
    assert ratio <= 1.10
