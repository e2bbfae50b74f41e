"""The sampler on a 10-minute 720p H.264 file, and the harness's own cost per item over
10,000 mock items through the pytest plugin. Run with ``pytest -m benchmark``; the long
clip is generated once (about a minute) into $VLM_BENCH_CACHE/bench."""

import json
import time

import pytest

from conftest import EVAL_TEST, SQUARE_MP4
from vlm_bench.config import cache_root
from vlm_bench.utils.synthetic import band_index, make_long_video
from vlm_bench.utils.video import select_frames

pytestmark = pytest.mark.benchmark
ITEMS = 10_000


@pytest.fixture(scope="module")
def long_clip():
    cache = cache_root() / "bench"
    path = cache / "long_720p_10min.mp4"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.mp4")
        make_long_video(tmp, minutes=10)
        tmp.rename(path)
    return path


@pytest.mark.benchmark(group="sampler-10min-720p")
@pytest.mark.parametrize("max_frames", [8, 16, 32, 64])
@pytest.mark.parametrize("reader", ["decord", "opencv"])
def test_sampler_long_video(benchmark, long_clip, reader, max_frames):
    frames, meta = benchmark.pedantic(select_frames, args=(long_clip, max_frames), kwargs={"reader": reader},
                                      rounds=3, iterations=1)
    assert meta.num_frames_total == 14400 and len(frames) == max_frames
    assert frames[0].shape == (720, 1280, 3)
    assert [band_index(f) for f in frames] == [i % 62 for i in meta.selected_indices]


def test_harness_cost_per_item_over_10000_items(pytester, tmp_path):
    """10,000 items of one small clip through the plugin with the mock engine: collection,
    frames, scoring, records and the summary, per item."""
    data = tmp_path / "many.jsonl"
    with open(data, "w") as fh:
        for i in range(ITEMS):
            fh.write(json.dumps({"id": f"q{i:05d}", "video": str(SQUARE_MP4), "question": "Where?", "answer": "right",
                                 "scorer": "normalized", "category": f"c{i % 10}"}) + "\n")
    pytester.makepyfile(test_many=EVAL_TEST)
    start = time.perf_counter()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "--dataset", str(data),
                                          "--results-dir", str(tmp_path / "out"), "--max-frames", "8")
    wall = time.perf_counter() - start
    result.assert_outcomes(passed=ITEMS)
    assert sum(1 for _ in open(tmp_path / "out" / "items.jsonl")) == ITEMS
    per_item_ms = wall / ITEMS * 1000
    print(f"{ITEMS} items in {wall:.1f} s: {per_item_ms:.2f} ms per item through pytest and the plugin")
    assert per_item_ms < 25
