"""Frames decoded once per video: questions that share a video and frame settings share
one decode (in memory, bounded by bytes; with or without the disk cache), and the disk
cache's own promises (compressed entries, eviction that leaves other writers' temporary
files alone and lists the folder rarely, damaged entries read as misses and rewritten)."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import COLOUR_MP4, SQUARE_MP4
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.frame_cache import FrameCache, FrameMemory
from vlm_bench.types import FrameSelection

SELECTION = FrameSelection((0,), 1, "uniform", None, "opencv")


def questions(write_jsonl, per_video=5, videos=(SQUARE_MP4, COLOUR_MP4), **item):
    items = [
        dict({"id": f"v{v}q{q}", "video": str(path), "question": "q", "answer": "a"}, **item)
        for v, path in enumerate(videos)
        for q in range(per_video)
    ]
    return write_jsonl(items)


def evaluator(data, **kw):
    run = build_run_config(model="mock", datasets=[str(data)], **kw)
    samples = load_samples(run.datasets[0])
    ev = Evaluator(run, samples)
    return ev, samples


def count_decodes(monkeypatch):
    import vlm_bench.frames as frames_mod

    calls = []
    real = frames_mod.select_frames
    monkeypatch.setattr(frames_mod, "select_frames", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return calls


@pytest.mark.parametrize("cache", [False, True], ids=["memory", "memory+disk"])
def test_questions_about_one_video_share_one_decode(write_jsonl, tmp_path, monkeypatch, cache):
    data = questions(write_jsonl)
    decodes = count_decodes(monkeypatch)
    ev, samples = evaluator(data, frame_cache=str(tmp_path / "cache") if cache else None)
    records = [ev.evaluate(s) for s in samples]
    assert sorted(decodes) == sorted([str(SQUARE_MP4), str(COLOUR_MP4)])
    assert ev.frames.decodes == 2 and ev.frames.memory.hits == 8
    assert all(r.error is None and r.passed for r in records)
    alone, _ = evaluator(data, frame_memory_gb=0)  # nothing shared: the same records, decoded ten times
    assert [alone.evaluate(s).video for s in samples] == [r.video for r in records]
    assert len(decodes) == 2 + 10
    ev.close()


def test_other_frame_settings_decode_again(write_jsonl, monkeypatch):
    data = write_jsonl([
        {"id": "a", "video": str(SQUARE_MP4), "question": "q", "answer": "a"},
        {"id": "b", "video": {"path": str(SQUARE_MP4), "max_frames": 3}, "question": "q", "answer": "a"},
        {"id": "c", "video": {"path": str(SQUARE_MP4), "max_frames": 3}, "question": "q", "answer": "a"},
    ])
    decodes = count_decodes(monkeypatch)
    ev, samples = evaluator(data)
    records = [ev.evaluate(s) for s in samples]
    assert len(decodes) == 2
    assert len(records[1].video["selected_indices"]) == 3 != len(records[0].video["selected_indices"])


def test_prefetch_shares_the_decode_with_the_questions_after_it(write_jsonl, monkeypatch):
    data = questions(write_jsonl, per_video=4)
    decodes = count_decodes(monkeypatch)
    ev, samples = evaluator(data)
    for i, sample in enumerate(samples):  # the plugin's order: queue what comes next, then answer
        ev.prefetch(samples[i + 1 : i + 3])
        assert ev.evaluate(sample).passed
    ev.close()
    assert len(decodes) == 2 and ev.frames.decodes == 2


def test_memory_is_bounded_by_bytes():
    memory = FrameMemory(1000)
    for key in "abc":
        memory.put(key, key, 400)
    assert memory.get("a") is None and memory.get("b") == "b" and memory.bytes == 800
    memory.put("d", "d", 400)  # "b" was used last: "c" goes
    assert memory.get("c") is None and memory.get("b") == "b"
    memory.put("huge", "x", 5000)  # larger than the bound: not kept, nothing dropped for it
    assert memory.get("huge") is None and memory.get("d") == "d"


def test_frame_memory_option_turns_sharing_off(write_jsonl, monkeypatch):
    data = questions(write_jsonl, per_video=3, videos=(SQUARE_MP4,))
    decodes = count_decodes(monkeypatch)
    ev, samples = evaluator(data, frame_memory_gb=0)
    for s in samples:
        ev.evaluate(s)
    assert len(decodes) == 3


# ---------------------------------------------------------------- the disk cache


def noise_frames(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(n)]


def test_entries_are_compressed_and_read_back_exactly(tmp_path):
    cache = FrameCache(tmp_path / "c")
    flat = [np.full((360, 640, 3), 90, np.uint8)] * 4  # 2.7 MB of frames
    cache.put("k", flat, SELECTION)
    assert cache.size_bytes() < 100_000
    frames, selection = cache.get("k")
    assert selection == SELECTION and all(np.array_equal(a, b) for a, b in zip(frames, flat))


def test_eviction_leaves_other_writers_temporary_files_alone(tmp_path):
    cache = FrameCache(tmp_path / "c", max_bytes=60_000)
    other = tmp_path / "c" / "frames" / ".tmp-abc123.npz"  # another process is writing this entry
    other.write_bytes(os.urandom(200_000))
    for i in range(5):
        cache.put(f"k{i}", noise_frames(seed=i), SELECTION)
    assert other.exists()
    assert cache.size_bytes() <= 60_000
    stale = tmp_path / "c" / "frames" / ".tmp-dead.npz"  # left by a writer killed long ago
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    cache.evict()
    assert not stale.exists() and other.exists()


def test_eviction_lists_the_folder_rarely(tmp_path, monkeypatch):
    frames = noise_frames(1)
    probe = FrameCache(tmp_path / "probe")
    probe.put("probe", frames, SELECTION)
    entry = probe.size_bytes()
    cache = FrameCache(tmp_path / "c", max_bytes=100 * entry)
    listings = []
    real = cache._list
    monkeypatch.setattr(cache, "_list", lambda: listings.append(1) or real())
    for i in range(1000):
        cache.put(f"k{i}", [frames[0] + (i % 7)], SELECTION)
    # once at the start, then once per ~10 entries written past the bound: not once per write
    assert len(listings) <= 1 + 1000 // 9
    assert cache.size_bytes() <= 100 * entry * 1.05


@pytest.mark.parametrize("damage", ["empty", "cut", "garbage"])
def test_a_damaged_entry_is_a_miss_and_is_written_again(tmp_path, write_jsonl, damage):
    data = questions(write_jsonl, per_video=1, videos=(SQUARE_MP4,))
    ev, samples = evaluator(data, frame_cache=str(tmp_path / "cache"))
    first = ev.evaluate(samples[0])
    entry = next((tmp_path / "cache" / "frames").glob("[!.]*.npz"))
    good = entry.read_bytes()
    entry.write_bytes({"empty": b"", "cut": good[: len(good) // 2], "garbage": os.urandom(len(good))}[damage])
    again, samples = evaluator(data, frame_cache=str(tmp_path / "cache"))
    record = again.evaluate(samples[0])
    assert record.error is None and record.video == first.video
    assert again.frames.cache.misses == 1 and again.frames.cache.hits == 0
    assert entry.read_bytes() == good  # rewritten
    third, samples = evaluator(data, frame_cache=str(tmp_path / "cache"))
    third.evaluate(samples[0])
    assert third.frames.cache.hits == 1


def test_two_processes_share_a_small_cache(tmp_path, write_jsonl):
    """Two runs writing to one cache with a bound that keeps evicting: no item fails."""
    data = questions(write_jsonl, per_video=1)
    script = (
        "import sys\n"
        "from vlm_bench.config import build_run_config\n"
        "from vlm_bench.datasets import load_samples\n"
        "from vlm_bench.evaluate import Evaluator\n"
        f"run = build_run_config(model='mock', datasets=[{str(data)!r}], frame_cache={str(tmp_path / 'cache')!r},"
        " frame_cache_gb=2e-6, frame_memory_gb=0)\n"
        "samples = load_samples(run.datasets[0])\n"
        "ev = Evaluator(run, samples)\n"
        "errors = [r.error for _ in range(15) for r in map(ev.evaluate, samples) if r.error]\n"
        "print(errors)\n"
        "sys.exit(1 if errors else 0)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not list((tmp_path / "cache" / "frames").glob(".tmp-*"))


def test_prefetch_only_where_decoding_takes_long_enough(write_jsonl):
    data = questions(write_jsonl, per_video=1)
    ev, samples = evaluator(data)
    ev.frames.decode_ms = 1.0  # decodes seen to be quick: decoded in turn, no thread
    ev.prefetch(samples)
    assert not ev.frames._media_ahead and ev.frames._executor is None
    ev.frames.decode_ms = 50.0
    ev.prefetch(samples)
    assert len(ev.frames._media_ahead) == 2
    assert [ev.evaluate(s).passed for s in samples] == [True, True]
    ev.close()
