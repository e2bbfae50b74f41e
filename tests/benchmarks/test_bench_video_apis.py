"""API generators are I/O-bound: 20 tasks against a fake provider (Runway's API, in its
own process) whose every generation takes 1 s, eight in flight against one at a time,
through the runner's look-ahead as the session drives it. Goal: at least 5x faster. Run
with ``pytest -m benchmark tests/benchmarks/test_bench_video_apis.py``."""

import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.request import urlopen

import pytest

from conftest import FIXTURES
from fake_video_apis import tiny_mp4
from vlm_bench.generation.base import GenerationTask
from vlm_bench.generation.catalog import resolve_generator, with_transport
from vlm_bench.generation.run import GenerationRunner

pytest.importorskip("runwayml")
pytestmark = pytest.mark.benchmark
KEY = "sk-bench"
TASKS, IN_FLIGHT, WORK_S = 20, 8, 1.0


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    source = FIXTURES / "vmevalkit" / "test_task" / "test_0000"  # a real 1920x1080 first frame
    root = tmp_path_factory.mktemp("tasks")
    made = []
    for i in range(TASKS):
        folder = root / "bench_task" / f"bench_{i:04d}"
        folder.mkdir(parents=True)
        for name in ("first_frame.png", "prompt.txt"):
            shutil.copyfile(source / name, folder / name)
        made.append(GenerationTask("bench", f"bench_{i:04d}", str(folder), "move the piece", dataset="bench"))
    return made


@pytest.fixture
def provider(tmp_path):
    video = tmp_path / "video.mp4"
    video.write_bytes(tiny_mp4(tmp_path))
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parents[1] / "fake_video_apis.py"), str(video), KEY,
                             str(WORK_S), "300"], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def generate_all(root, tasks, outputs, in_flight):
    cfg = with_transport(resolve_generator("runway-gen4-turbo"), base_url=f"{root}/runway")
    cfg = replace(cfg, concurrency=in_flight, api={**cfg.api, "poll_interval_s": 0.05, "requests_per_minute": None})
    runner = GenerationRunner(cfg, cfg.settings(), outputs)
    runner.load()
    started = time.perf_counter()
    records = []
    for i, task in enumerate(tasks):  # what the session does for each test
        runner.prefetch(tasks[i + 1:i + in_flight])
        records.append(runner.run(task)[0])
    runner.close()
    assert all(r.passed for r in records), [r.error for r in records if not r.passed][:3]
    return time.perf_counter() - started


def test_eight_in_flight_is_at_least_5x_faster_than_one_at_a_time(benchmark, tasks, provider, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNWAYML_API_SECRET", KEY)
    serial = generate_all(provider, tasks, tmp_path / "serial", 1)
    rounds = iter(range(100))
    parallel = benchmark.pedantic(lambda: generate_all(provider, tasks, tmp_path / f"parallel{next(rounds)}", IN_FLIGHT),
                                  rounds=1, iterations=1)
    submitted = json.loads(urlopen(f"{provider}/_stats").read())["runway/submit"]
    benchmark.extra_info.update(serial_s=round(serial, 2), parallel_s=round(parallel, 2), speedup=round(serial / parallel, 2))
    print(f"\n20 tasks, 1 s each: one at a time {serial:.2f} s, {IN_FLIGHT} in flight {parallel:.2f} s, {serial / parallel:.1f}x")
    assert submitted == 2 * TASKS  # each task submitted once per run
    assert serial / parallel >= 5, f"{IN_FLIGHT} in flight: {parallel:.2f} s, one at a time: {serial:.2f} s"
