"""Frame memory is bounded by bytes: an item whose decoded frames would exceed
--item-frames-gb fails with advice before they are decoded (the run goes on), batch
readers decode in chunks, and prefetch holds back when items are large."""

import json
import threading

import numpy as np
import pytest

from conftest import COLOUR_MP4, EVAL_TEST, SMOKE_JSONL, SQUARE_MP4, read_jsonl
from vlm_bench.config import build_run_config, default_item_frames_gb
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.utils import readers as readers_mod
from vlm_bench.utils.synthetic import band_index
from vlm_bench.utils.readers import FrameBudgetError
from vlm_bench.utils.video import read_image_frames, select_frames

QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")
FRAME_BYTES = 96 * 128 * 3  # the smoke videos' frames


@pytest.mark.parametrize("reader", ["decord", "opencv"])
def test_too_many_frame_bytes_fail_before_decoding_them(reader, monkeypatch):
    monkeypatch.setattr(readers_mod, "READ_CHUNK", 4)  # decord refuses after its first chunk
    with pytest.raises(FrameBudgetError, match=r"40 frames of 128x96 need 0.0 GB decoded, more than the 0.0 GB an item may use \(--item-frames-gb\)"):
        select_frames(SQUARE_MP4, 40, reader=reader, max_bytes=39 * FRAME_BYTES)
    frames, _ = select_frames(SQUARE_MP4, 40, reader=reader, max_bytes=40 * FRAME_BYTES)
    assert len(frames) == 40


def test_chunked_reads_give_the_same_frames(monkeypatch):
    whole, meta = select_frames(COLOUR_MP4, 40, reader="decord")
    monkeypatch.setattr(readers_mod, "READ_CHUNK", 3)
    chunked, meta2 = select_frames(COLOUR_MP4, 40, reader="decord")
    assert meta == meta2 and all(np.array_equal(a, b) for a, b in zip(whole, chunked))
    assert [band_index(f) for f in chunked] == list(meta.selected_indices)


def test_image_lists_are_bounded_too(tmp_path):
    from vlm_bench.utils.synthetic import write_png

    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        write_png(paths[-1], np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(FrameBudgetError, match="3 frames of 20x10"):
        read_image_frames(paths, 8, max_bytes=2 * 600)


def test_an_item_over_the_bound_fails_alone_with_advice(pytester):
    pytester.makepyfile(test_run_items=EVAL_TEST)
    out = pytester.path / "o"
    # 32 frames of 128x96 are 1.1 MB; 48 frames would be 1.7 MB
    data = pytester.path / "d.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in [
        {"id": "small", "video": {"path": str(SQUARE_MP4), "max_frames": 8}, "question": "q", "answer": "x"},
        {"id": "large", "video": {"path": str(COLOUR_MP4), "max_frames": 48}, "question": "q", "answer": "x"},
    ]))
    result = pytester.runpytest_inprocess(*QUIET, "--dataset", str(data), "--results-dir", str(out), "--item-frames-gb", "0.0015")
    result.assert_outcomes(passed=1, failed=1)
    records = {r["id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert records["small"]["error"] is None
    assert records["large"]["error"].startswith("item 'large': 48 frames of 128x96 need 0.0 GB decoded, more than")
    assert "lower --max-frames" in records["large"]["error"]


def test_prefetch_holds_back_for_large_items():
    run = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    samples = [s for s in load_samples(run.datasets[0]) if s.video]
    ev = Evaluator(run, samples)
    ev.frames.max_item_bytes = 25 * 10**5
    ev.frames._item_bytes = 10**6  # items of 1 MB: the running one and one ahead fit in 2.5 MB
    held = threading.Event()  # no background decode finishes (and updates the item size) meanwhile
    decode = ev.frames._decode_or_read
    ev.frames._decode_or_read = lambda *args: held.wait() and decode(*args)
    try:
        ev.prefetch(samples[1:])
        assert len(ev.frames._media_ahead) == 1
    finally:
        held.set()
        ev.close()


def test_default_bound_is_a_quarter_of_memory_at_most_16_gb(monkeypatch):
    assert 0 < default_item_frames_gb() <= 16.0
    page = 4096
    for ram_gb, bound in ((24, 6.0), (8, 2.0), (256, 16.0)):
        sizes = {"SC_PAGE_SIZE": page, "SC_PHYS_PAGES": ram_gb * 1024**3 // page}
        monkeypatch.setattr("os.sysconf", sizes.__getitem__)
        assert default_item_frames_gb() == bound, ram_gb
    monkeypatch.undo()
    assert build_run_config(model="mock", datasets=[str(SMOKE_JSONL)]).item_frames_gb == default_item_frames_gb()
