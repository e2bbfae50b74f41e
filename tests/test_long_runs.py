"""Runs that survive and scale: crash safety, resume, xdist workers and GPU slices,
shards and merge, the frame cache and prefetch, bad input that fails one item only."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import COLOUR_MP4, EVAL_TEST, SMOKE_JSONL, SQUARE_MP4, read_jsonl, without_timing
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.frame_cache import FrameCache
from vlm_bench.scheduling import check_gpu_plan, in_shard, shard_of, visible_gpus, worker_gpus
from vlm_bench.types import Sample, VideoConfig

SMOKE_IDS = [json.loads(line)["id"] for line in SMOKE_JSONL.read_text().splitlines()]
QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_run_items=EVAL_TEST)
    return pytester


def run(suite, *args):
    return suite.runpytest_inprocess(*QUIET, "--dataset", str(SMOKE_JSONL), *args)


def slow_mock(path: Path, delay_ms: int, **responses) -> str:
    path.write_text(f"family: mock\ndelay_ms: {delay_ms}\nresponses: {json.dumps(responses)}\n")
    return str(path)


# ---------------------------------------------------------------- crash safety and resume


def test_kill_9_keeps_finished_items_and_resume_finishes_the_run(tmp_path):
    """A real pytest process killed with SIGKILL mid-run."""
    (tmp_path / "test_run_items.py").write_text(EVAL_TEST)
    model = slow_mock(tmp_path / "slow.yaml", 400)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pytest", *QUIET[:2], "test_run_items.py", "--dataset", str(SMOKE_JSONL),
           "--model", model, "--results-dir", str(out), "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    items = out / "items.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not items.exists() or items.read_text().count("\n") < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    lines = items.read_text().split("\n")
    finished = [json.loads(line) for line in lines if line]  # every finished item is a whole line
    assert 3 <= len(finished) < len(SMOKE_IDS)
    assert lines[-1] == ""  # nothing half-written
    # a kill during a write leaves at most that line cut short; imitate one
    with open(items, "a") as fh:
        fh.write('{"id": "colour_count", "dataset": "smo')
    resumed = subprocess.run(cmd[:-1] + ["--resume", "-q", "-W", "default::UserWarning"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "dropping a partial last line" in resumed.stdout + resumed.stderr
    assert f"reused {len(finished)} finished items" in resumed.stdout
    # the killed run's lock is stale: named, and taken over
    assert f"took over {out} from a run that is no longer running (pid {proc.pid} on " in resumed.stdout
    records = read_jsonl(items)
    assert sorted(r["id"] for r in records) == sorted(SMOKE_IDS)  # each item once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"] == len(SMOKE_IDS) and summary["reused"] == len(finished)


@pytest.mark.smoke
def test_resume_reuses_records_and_reruns_errors(suite, tmp_path, monkeypatch):
    out = tmp_path / "out"
    broken = slow_mock(tmp_path / "m.yaml", 0, square_direction="left")
    first = run(suite, "--model", broken, "--results-dir", str(out), "-k", "not colour")
    first.assert_outcomes(passed=4, failed=1)
    # make one stored record an error, as an OOM would leave it: it runs again
    records = read_jsonl(out / "items.jsonl")
    records[0]["error"] = "CUDA out of memory"
    (out / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    from vlm_bench.runners.mock_backend import MockEngine

    calls = []
    original = MockEngine.generate_video
    monkeypatch.setattr(MockEngine, "generate_video", lambda self, m, *a, **k: calls.append(m.item_id) or original(self, m, *a, **k))
    second = run(suite, "--model", broken, "--results-dir", str(out), "--resume")
    second.assert_outcomes(passed=8, failed=1)
    assert records[0]["id"] == "square_direction"  # errored, so it ran again (and fails again)
    assert sorted(calls) == sorted(["square_colour_mc", "colour_last", "colour_first", "colour_count", "square_direction"])
    second.stdout.fnmatch_lines(["reused 4 finished items from the resumed run"])
    final = read_jsonl(out / "items.jsonl")
    assert sorted(r["id"] for r in final) == sorted(SMOKE_IDS)
    assert json.loads((out / "summary.json").read_text())["total"] == 9


def test_resume_refuses_a_changed_setting(suite, tmp_path):
    out = tmp_path / "out"
    run(suite, "--results-dir", str(out), "--max-frames", "4").assert_outcomes(passed=9)
    again = run(suite, "--results-dir", str(out), "--max-frames", "6", "--resume")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    err = again.stderr.str()
    assert "--resume:" in err and "holds a different run" in err and "video_overrides.max_frames: 4 -> 6" in err
    assert "choose another --results-dir" in err
    run(suite, "--results-dir", str(tmp_path / "other"), "--max-frames", "6").assert_outcomes(passed=9)


# ---------------------------------------------------------------- xdist


def test_xdist_workers_give_the_same_records_as_a_serial_run(suite, tmp_path):
    serial = run(suite, "--results-dir", str(tmp_path / "serial"))
    serial.assert_outcomes(passed=9)
    result = suite.runpytest_subprocess(*QUIET, "-n", "2", "-v", "--dataset", str(SMOKE_JSONL),
                                        "--results-dir", str(tmp_path / "xdist"))
    result.assert_outcomes(passed=9)
    a = read_jsonl(tmp_path / "serial" / "items.jsonl")
    b = read_jsonl(tmp_path / "xdist" / "items.jsonl")
    assert len(b) == 9 and sorted(r["id"] for r in b) == sorted(r["id"] for r in a)  # none lost, none twice
    strip = lambda rs: sorted((json.dumps(without_timing(r), sort_keys=True) for r in rs))
    assert strip(a) == strip(b)
    summary = json.loads((tmp_path / "xdist" / "summary.json").read_text())
    assert summary["total"] == 9 and set(summary["workers"]) == {"gw0", "gw1"}
    assert all(w["engine_loads"] == 1 for w in summary["workers"].values())  # one load per worker
    # one video's questions ran on one worker (--dist loadgroup, set by the plugin)
    worker_of = {}
    for line in result.stdout.lines:
        m = re.search(r"\[(gw\d+)\].* PASSED .*test_video_qa\[([^\]]+)\]", line)
        if m:
            worker_of[m.group(2)] = m.group(1)
    assert len(worker_of) == 9
    assert worker_of["square_direction"] == worker_of["square_colour_mc"]
    assert len({worker_of[i] for i in ("colour_last", "colour_first", "colour_count")}) == 1


def test_workers_get_their_own_gpu_slice(suite, tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES=4,5,6,7 and 2 workers x 2 GPUs: gw0 gets 4,5 and gw1 6,7 (mapped
    through the outer list). No GPU is needed to check the mapping reaches the workers."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    result = suite.runpytest_subprocess(*QUIET, "-n", "2", "--gpus-per-worker", "2", "--dataset", str(SMOKE_JSONL),
                                        "--results-dir", str(tmp_path / "o"))
    result.assert_outcomes(passed=9)
    workers = json.loads((tmp_path / "o" / "summary.json").read_text())["workers"]
    assert {w: info["gpus"] for w, info in workers.items()} == {"gw0": "4,5", "gw1": "6,7"}
    short = suite.runpytest_subprocess(*QUIET, "-n", "3", "--gpus-per-worker", "2", "--dataset", str(SMOKE_JSONL))
    assert short.ret == pytest.ExitCode.USAGE_ERROR
    assert "3 workers x 2 GPUs need 6 GPUs, 4 are visible (4,5,6,7)" in short.stderr.str()


def test_gpu_mapping_is_a_pure_function():
    assert worker_gpus(0, 1, ["0", "1", "2"]) == ["0"]
    assert worker_gpus(2, 1, ["0", "1", "2"]) == ["2"]
    assert worker_gpus(1, 2, ["4", "5", "6", "7"]) == ["6", "7"]
    assert worker_gpus(0, 2, ["GPU-a1", "GPU-b2"]) == ["GPU-a1", "GPU-b2"]  # UUIDs pass through
    with pytest.raises(ValueError, match="worker 2 needs GPUs 2..2"):
        worker_gpus(2, 1, ["0", "1"])  # never wraps around (k % device_count)
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3, 1"}) == ["3", "1"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    check_gpu_plan(2, 2, ["0", "1", "2", "3"])
    with pytest.raises(ValueError, match="lower -n or --gpus-per-worker"):
        check_gpu_plan(4, 2, ["0", "1", "2", "3"])


# ---------------------------------------------------------------- shards and merge


def test_shards_are_stable_disjoint_and_complete():
    uids = [f"ds/item{i}" for i in range(200)]
    shards = [{u for u in uids if in_shard(u, (i, 4))} for i in range(4)]
    assert set().union(*shards) == set(uids) and sum(len(s) for s in shards) == 200
    assert all(30 < len(s) < 70 for s in shards)
    assert [shard_of(u, 4) for u in reversed(uids)] == [shard_of(u, 4) for u in uids][::-1]  # order-free


def test_shard_runs_merge_into_one_run(suite, tmp_path):
    for i in range(3):
        run(suite, "--shard", f"{i}/3", "--results-dir", str(tmp_path / f"s{i}"))
    ids = [sorted(r["id"] for r in read_jsonl(tmp_path / f"s{i}" / "items.jsonl")) for i in range(3)]
    assert sorted(sum(ids, [])) == sorted(SMOKE_IDS) and all(ids)
    vlm_bench = str(Path(sys.executable).with_name("vlm-bench"))
    merged = subprocess.run([vlm_bench, "merge", *(str(tmp_path / f"s{i}") for i in range(3)), "--out", str(tmp_path / "all")],
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    assert "merged 9 items from 3 directories" in merged.stdout
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert summary["total"] == 9 and summary["pass_rate"] == 1.0
    run(suite, "--shard", "0/3", "--max-frames", "3", "--results-dir", str(tmp_path / "odd"))
    refused = subprocess.run([vlm_bench, "merge", str(tmp_path / "s1"), str(tmp_path / "odd"), "--out", str(tmp_path / "x")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "different runs (video_overrides.max_frames: None -> 3)" in refused.stderr


def test_slurm_example_is_a_valid_array_script():
    script = (Path(__file__).resolve().parents[1] / "examples" / "slurm_array.sh").read_text()
    assert "#SBATCH --array=0-" in script and '--shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}"' in script
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0


# ---------------------------------------------------------------- frame cache and prefetch


def test_frame_cache_second_run_decodes_nothing(suite, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    run(suite, "--frame-cache", str(cache), "--results-dir", str(tmp_path / "a")).assert_outcomes(passed=9)
    first = json.loads((tmp_path / "a" / "summary.json").read_text())["workers"]["main"]
    # questions sharing a video and settings share one decode in memory; each decode is a cache miss
    assert first["frame_cache"] == {"hits": 0, "misses": first["frames"]["decoded"]}
    assert first["frames"]["decoded"] + first["frames"]["shared"] == 9 and first["frames"]["shared"] >= 1
    import vlm_bench.frames as frames_mod

    def no_decoding(*a, **k):
        raise AssertionError("decoded a video although its frames are cached")

    monkeypatch.setattr(frames_mod, "select_frames", no_decoding)
    monkeypatch.setattr(frames_mod, "read_image_frames", no_decoding)
    run(suite, "--frame-cache", str(cache), "--results-dir", str(tmp_path / "b")).assert_outcomes(passed=9)
    second = json.loads((tmp_path / "b" / "summary.json").read_text())["workers"]["main"]
    assert second["frame_cache"] == {"hits": first["frames"]["decoded"], "misses": 0}
    assert second["frames"] == first["frames"]
    strip = lambda p: [without_timing(r) for r in read_jsonl(p)]
    assert strip(tmp_path / "a" / "items.jsonl") == strip(tmp_path / "b" / "items.jsonl")


def test_frame_cache_keys_on_content_and_bound(tmp_path):
    cache = FrameCache(tmp_path / "c")
    a = Sample(id="a", dataset="d", question="q", answer="x", video=str(SQUARE_MP4))
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(SQUARE_MP4.read_bytes())
    b = Sample(id="b", dataset="d", question="q", answer="x", video=str(copy))
    video = VideoConfig(max_frames=4)
    assert cache.key(a, video) == cache.key(b, video)  # same bytes, another name
    bounded = Sample(id="c", dataset="d", question="q", answer="x", video=str(SQUARE_MP4), bound=(0.5, 1.5))
    assert cache.key(bounded, video) != cache.key(a, video)
    assert cache.key(a, VideoConfig(max_frames=5)) != cache.key(a, video)
    other = Sample(id="e", dataset="d", question="q", answer="x", video=str(COLOUR_MP4))
    assert cache.key(other, video) != cache.key(a, video)


def test_frame_cache_is_bounded_and_safe_under_concurrent_writers(tmp_path):
    from vlm_bench.types import FrameSelection

    frame = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)  # noise: stays ~30 kB compressed
    sel = FrameSelection((0,), 1, "uniform", None, "opencv")
    cache = FrameCache(tmp_path / "c", max_bytes=250_000)
    for i in range(10):
        cache.put(f"k{i}", [frame + i] * 3, sel)  # ~90 kB each
        time.sleep(0.01)
    assert cache.size_bytes() <= 250_000
    assert cache.get("k9") is not None and cache.get("k0") is None  # least recently used went first
    cache = FrameCache(tmp_path / "shared")  # several writers of one key, no eviction in play
    errors = []

    def writer(n):
        try:
            for _ in range(20):
                cache.put("shared", [frame + n] * 3, sel)
                got = cache.get("shared")
                assert got is not None and len(got[0]) == 3
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not list((tmp_path / "c" / "frames").glob(".tmp-*"))


def test_prefetch_gives_the_same_records():
    run_cfg = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    samples = load_samples(run_cfg.datasets[0])
    plain = Evaluator(run_cfg, samples)
    ahead = Evaluator(run_cfg, samples)
    ahead.prefetch(samples)
    for s in samples:
        assert plain.evaluate(s).video == ahead.evaluate(s).video
    ahead.close()


# ---------------------------------------------------------------- bad input


def test_bad_input_fails_one_item_and_the_run_goes_on(suite, tmp_path, write_jsonl):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    data = write_jsonl([
        {"id": "corrupt", "video": str(corrupt), "question": "q", "answer": "x"},
        {"id": "missing_frame", "frames": [str(tmp_path / "nope.png")], "question": "q", "answer": "x"},
        {"id": "engine_fails", "video": str(SQUARE_MP4), "question": "q", "answer": "x"},
        {"id": "fine", "video": str(COLOUR_MP4), "question": "q", "answer": "x"},
    ])
    model = tmp_path / "m.yaml"
    model.write_text("family: mock\nresponses: {}\n")
    from vlm_bench.runners import mock_backend

    original = mock_backend.MockEngine.generate_video

    def flaky(self, media, *a, **k):
        if media.item_id == "engine_fails":
            raise RuntimeError("kernel panic")
        return original(self, media, *a, **k)

    mock_backend.MockEngine.generate_video = flaky
    try:
        result = suite.runpytest_inprocess(*QUIET, "--dataset", str(data), "--model", str(model),
                                           "--results-dir", str(tmp_path / "o"))
    finally:
        mock_backend.MockEngine.generate_video = original
    result.assert_outcomes(passed=1, failed=3)
    errors = {r["id"]: r["error"] for r in read_jsonl(tmp_path / "o" / "items.jsonl")}
    assert "corrupt or unsupported video" in errors["corrupt"]
    assert "frame file not found" in errors["missing_frame"]
    assert errors["engine_fails"] == "engine error on item 'engine_fails': RuntimeError: kernel panic"
    assert errors["fine"] is None
