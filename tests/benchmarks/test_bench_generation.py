"""Video generation on the tiny LTX-Video pipeline: time per task through the harness
(first frame, pipeline, H.264 encode, decode check, question copy, metadata.json, rename,
record) against the bare pipeline call on the same prepared inputs, and one pipeline load
for a whole session. Run with ``pytest -m benchmark tests/benchmarks/test_bench_generation.py``.

The tiny pipeline is asked for 25 frames at 64x64 with 12 steps, so that its call takes
a second or two on one CPU thread: the harness's cost per task is fixed, a real model's
call takes minutes."""

import statistics
import time

import pytest

from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.generation.catalog import resolve_generator
from vlm_bench.generation.run import GenerationRunner, tasks_from_samples

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytestmark = pytest.mark.benchmark
SETTINGS = {"num_frames": 25, "height": 64, "width": 64, "steps": 12}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    run = build_run_config(model="mock", datasets=["vmevalkit_fixtures"])
    tasks = tasks_from_samples(load_samples(run.datasets[0]), run.datasets)
    task = tasks[0]  # the largest first frame (1920x1080 RGBA): the harness's image work is at its most
    cfg = resolve_generator("tiny-ltx-video")
    runner = GenerationRunner(cfg, cfg.settings(SETTINGS, cuda=False), tmp_path_factory.mktemp("outputs"), override=True)
    runner.load()
    gen = runner.generator
    image, height, width = gen.prepare_image(task.first_frame)

    def bare():
        return gen.frames(gen.call_kwargs(task.prompt, image, height, width))

    def harness():
        record, _ = runner.run(task)
        assert record.passed, record.error
        return record

    assert bare().shape == (25, 64, 64, 3)
    return bare, harness, runner, tasks


@pytest.mark.benchmark(group="generation-tiny")
def test_bare_pipeline_call(benchmark, tiny):
    bare, *_ = tiny
    benchmark.pedantic(bare, rounds=3, warmup_rounds=1)


@pytest.mark.benchmark(group="generation-tiny")
def test_harness_task(benchmark, tiny):
    _, harness, *_ = tiny
    benchmark.pedantic(harness, rounds=3, warmup_rounds=1)


def test_harness_adds_at_most_ten_percent(tiny):
    """Within each harness task, its time over its own pipeline call (the same call the
    bare benchmark makes), median of several tasks; separate bare and harness runs,
    interleaved, give a second, noisier view on a shared machine."""
    bare, harness, *_ = tiny
    times = {"bare": [], "harness": []}
    within = []
    for _ in range(6):  # interleaved, so drift on a shared machine hits both alike
        for name, fn in (("bare", bare), ("harness", harness)):
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            if name == "harness":
                within.append((out.latency_ms / 1000, out.meta["result_metadata"]["pipeline_seconds"]))
    b, h = statistics.median(times["bare"]), statistics.median(times["harness"])
    ratio = statistics.median(task / call for task, call in within)
    added = statistics.median(task - call for task, call in within)
    print(f"harness task / its pipeline call: {ratio:.3f} (median {1000 * added:.0f} ms added per task); "
          f"separate runs: harness {h * 1000:.0f} ms, bare call {b * 1000:.0f} ms ({h / b:.3f})")
    assert ratio <= 1.10


def test_one_pipeline_load_for_every_task(tiny):
    _, _, runner, tasks = tiny
    for task in tasks:
        assert runner.run(task)[0].passed
    assert runner.load_count == 1
