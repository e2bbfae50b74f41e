"""Every reader gives the model card's frames: InternVL3's recipe (decord, ``get_index`` over
``len(vr) - 1`` at decord's average rate, 8 segments) is run as written on every video fixture
and on a variable-frame-rate file, and each reader of the shared sampler must return the same
indices and the same pixels. TorchCodec joins the reader chosen per file."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FIXTURES, SQUARE_MP4, need_torchcodec
from test_vfr import vfr_video  # noqa: F401 (fixture: 40 frames, 30 fps then 2 fps)
from test_video import long_gop_clip, model_card_get_index  # noqa: F401 (fixture: 600 frames, a keyframe every 24)
from vlm_bench.utils import readers
from vlm_bench.utils.synthetic import band_index
from vlm_bench.utils.video import select_frames

decord = pytest.importorskip("decord")

FIXTURE_VIDEOS = sorted(FIXTURES.rglob("*.mp4"))


def model_card_frames(path, segments: int = 8):
    """The model card's ``load_video``, before its transform."""
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    indices = model_card_get_index(None, float(vr.get_avg_fps()), len(vr) - 1, num_segments=segments)
    return indices, [vr[i].asnumpy() for i in indices]


def same_pixels(frames, expected) -> bool:
    """Equal, but for the YUV-to-RGB conversion's rounding: at most one grey level (OpenCV
    and PyAV on the 600x600 MPEG-4 fixture; everywhere else the frames are identical)."""
    return len(frames) == len(expected) and all(
        a.shape == b.shape and int(np.abs(a.astype(np.int16) - b).max()) <= 1 for a, b in zip(frames, expected))


def readers_here(constant_rate: bool) -> list[str]:
    names = ["decord", "opencv", "torchcodec"]
    return names + ["pyav"] if constant_rate and readers.pyav_available() else names


def test_there_are_fixtures_of_every_kind():
    assert len(FIXTURE_VIDEOS) >= 10  # smoke, benchmark layouts (Video-MME, MVBench, NExT-QA), VMEvalKit


@pytest.mark.parametrize("path", FIXTURE_VIDEOS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_reader_gives_the_model_cards_frames_on_every_fixture(path):
    need_torchcodec()
    indices, expected = model_card_frames(path)
    for reader in readers_here(constant_rate=True):
        frames, meta = select_frames(path, 8, reader=reader)
        assert list(meta.selected_indices) == indices, reader
        assert same_pixels(frames, expected), reader
    frames, meta = select_frames(path, 8)  # the reader chosen for this file
    assert list(meta.selected_indices) == indices and same_pixels(frames, expected)


def test_every_reader_gives_the_model_cards_frames_on_variable_frame_rate(vfr_video):
    need_torchcodec()
    indices, expected = model_card_frames(vfr_video)
    assert [band_index(f) for f in expected] == indices  # frame i is the i-th shown, whatever its time
    for reader in readers_here(constant_rate=False):
        frames, meta = select_frames(vfr_video, 8, reader=reader)
        assert list(meta.selected_indices) == indices, reader
        assert same_pixels(frames, expected), reader


def test_torchcodec_follows_presentation_time_in_the_fps_strategy(vfr_video):
    need_torchcodec()
    frames, meta = select_frames(vfr_video, 16, "fps", fps=1.0, reader="torchcodec")
    assert list(meta.selected_indices) == [15, 31, 33, 35, 37, 39]  # the frames on screen at 0.5 s, 1.5 s, ... 5.5 s
    assert [band_index(f) for f in frames] == list(meta.selected_indices)


def test_auto_seeks_with_torchcodec_where_it_loads_and_records_its_version(long_gop_clip):
    need_torchcodec()
    import torchcodec

    frames, meta = select_frames(long_gop_clip, 4)
    assert meta.reader == "torchcodec" and meta.reader_version == torchcodec.__version__
    assert meta.as_dict()["reader_version"] == torchcodec.__version__
    assert [band_index(f) for f in frames] == [i % 62 for i in meta.selected_indices]
    _, dense = select_frames(SQUARE_MP4, 4)  # 48 frames: a sequential read was measured fastest
    assert dense.reader == "opencv" and dense.reader_version == readers.cv2.__version__


def test_a_file_torchcodec_rejects_falls_back_to_the_other_readers(long_gop_clip, monkeypatch):
    need_torchcodec()

    def refuse(self, path, threads=None):
        raise readers.MediaError("TorchCodec cannot open video")

    monkeypatch.setattr(readers.TorchCodecReader, "__init__", refuse)
    frames, meta = select_frames(long_gop_clip, 4)
    assert meta.reader == "pyav" and [band_index(f) for f in frames] == [i % 62 for i in meta.selected_indices]


def test_torchcodec_without_ffmpeg_says_what_to_install(monkeypatch):
    monkeypatch.setattr(readers, "_torchcodec_error", lambda: "libavutil.so: cannot open shared object file")
    assert not readers.torchcodec_available()
    with pytest.raises(RuntimeError, match=r"install FFmpeg 4-8 \(Debian: apt-get install ffmpeg\)"):
        readers.TorchCodecReader(str(SQUARE_MP4))
    assert select_frames(SQUARE_MP4, 4)[1].reader in ("opencv", "decord", "pyav")  # auto goes on without it


def test_torchcodec_threads_are_set_on_purpose(monkeypatch):
    assert readers.torchcodec_threads() == 1
    monkeypatch.setenv("VLM_BENCH_TORCHCODEC_THREADS", "0")
    assert readers.torchcodec_threads() == 0
    for bad in ("-1", "two"):
        monkeypatch.setenv("VLM_BENCH_TORCHCODEC_THREADS", bad)
        with pytest.raises(ValueError, match="VLM_BENCH_TORCHCODEC_THREADS"):
            readers.torchcodec_threads()
