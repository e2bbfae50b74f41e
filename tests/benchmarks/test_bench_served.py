"""Items per second through the openai backend against a real ``transformers serve`` (the
tiny InternVL on CPU): 4 requests in flight vs 1, on the same server, interleaved so drift
on a shared machine hits both alike. Run with
``pytest -m benchmark tests/benchmarks/test_bench_served.py -s``.

``transformers serve`` generates one request at a time on CPU (its continuous batching
is for text-only models; a VLM falls back to sequential generation), so what 4 in flight
buys here is overlap: frame decoding, resizing, PNG encoding and the HTTP round trip of
the next items while the server generates, and the server's own image decoding and
processing while its inference thread works.
"""

import json
import statistics
import time
from pathlib import Path

import pytest

from conftest import SMOKE_JSONL
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator

pytest.importorskip("torch")
pytestmark = pytest.mark.benchmark
COPIES = 3  # the 9 smoke items three times: 27 items a run
ROUNDS = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The smoke set, repeated under new ids, with absolute media paths."""
    base = SMOKE_JSONL.parent
    lines = []
    for copy in range(COPIES):
        for line in SMOKE_JSONL.read_text().splitlines():
            item = json.loads(line)
            item["id"] = f"{item['id']}_{copy}"
            if isinstance(item.get("video"), dict):
                item["video"]["path"] = str((base / item["video"]["path"]).resolve())
            elif item.get("video"):
                item["video"] = str((base / item["video"]).resolve())
            if item.get("frames"):
                frames = [item["frames"]] if isinstance(item["frames"], str) else item["frames"]
                item["frames"] = [str((base / f).resolve()) for f in frames]
            lines.append(json.dumps(item))
    path = tmp_path_factory.mktemp("served") / "smoke_x3.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def items_per_second(url: str, dataset: Path, concurrency: int) -> float:
    """A whole run as the plugin drives it: each item asked for in turn, the next
    ``concurrency - 1`` submitted ahead."""
    run = build_run_config(model="tiny-internvl3", backend="openai", datasets=[str(dataset)],
                           server_overrides={"base_url": url, "concurrency": concurrency})
    samples = load_samples(run.datasets[0])
    evaluator = Evaluator(run, samples)
    evaluator.load()
    start = time.perf_counter()
    for i, sample in enumerate(samples):
        record = evaluator.evaluate(sample, samples[i + 1 : i + concurrency])
        assert record.error is None, record.error
    elapsed = time.perf_counter() - start
    evaluator.close()
    return len(samples) / elapsed


@pytest.mark.benchmark(group="served-tiny")
def test_four_in_flight_vs_one(benchmark, tiny_server, dataset):
    items_per_second(tiny_server.url, dataset, 4)  # warm-up: the server's first requests
    rates = {1: [], 4: []}

    def both():
        for concurrency in (1, 4):
            rates[concurrency].append(items_per_second(tiny_server.url, dataset, concurrency))

    benchmark.pedantic(both, rounds=ROUNDS, iterations=1)
    one, four = statistics.median(rates[1]), statistics.median(rates[4])
    benchmark.extra_info.update(items_per_s_1=round(one, 2), items_per_s_4=round(four, 2), ratio=round(four / one, 3))
    print(f"\nitems/s against transformers serve (tiny InternVL, CPU): 1 in flight {one:.2f}, "
          f"4 in flight {four:.2f}, ratio {four / one:.2f} (medians of {ROUNDS} interleaved runs of {9 * COPIES} items)")
    assert four / one >= 0.9  # requests in flight must not cost throughput
