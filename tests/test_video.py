import numpy as np
import pytest

from conftest import COLOUR_MP4, SQUARE_MP4, need_torchcodec
from vlm_bench.utils.synthetic import band_index, write_png
from vlm_bench.utils.readers import MediaError
from vlm_bench.utils.sampling import choose_indices, fps_indices, stride_indices, uniform_indices
from vlm_bench.utils.video import read_image_frames, select_frames


def model_card_get_index(bound, fps, max_frame, first_idx=0, num_segments=32):
    """The InternVL3 model card's index rule, written out from its published recipe."""
    if bound:
        start, end = bound[0], bound[1]
    else:
        start, end = -100000, 100000
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]


@pytest.mark.smoke
def test_uniform_known_values():
    # 48 frames, 8 segments: seg = 47/8; centres with numpy (banker's) rounding
    assert uniform_indices(48, 8) == [2, 8, 14, 20, 26, 31, 37, 43]
    assert uniform_indices(1, 4) == [0, 0, 0, 0]


@pytest.mark.parametrize("n", [1, 7, 48, 60, 131, 300, 1800])
@pytest.mark.parametrize("segments", [1, 4, 8, 16, 32, 64])
def test_uniform_matches_model_card(n, segments):
    assert uniform_indices(n, segments, video_fps=30) == model_card_get_index(None, 30, n - 1, num_segments=segments)


@pytest.mark.parametrize("bound", [(0.5, 1.5), (1.0, 100.0), (-3, 0.9)])
def test_uniform_bound_matches_model_card(bound):
    assert uniform_indices(60, 8, video_fps=30, bound=bound) == model_card_get_index(bound, 30, 59, num_segments=8)


def test_stride_and_fps_indices():
    assert stride_indices(60, 10, 32) == [0, 10, 20, 30, 40, 50]
    thinned = stride_indices(600, 10, 6)  # 60 candidates thinned to 6, spread over the whole clip
    assert len(thinned) == 6 and thinned[0] < 100 and thinned[-1] > 500
    assert all(i % 10 == 0 for i in thinned)
    # 2 s at 30 fps sampled at 2 fps: one frame at the centre of each half second
    assert fps_indices(60, 30.0, 2.0, 32) == [7, 22, 37, 52]
    assert len(fps_indices(3000, 30.0, 2.0, 16)) == 16


def test_strategy_needs_its_parameter():
    with pytest.raises(ValueError, match="needs stride"):
        choose_indices(60, 30.0, 8, "stride")
    with pytest.raises(ValueError, match="needs fps"):
        choose_indices(60, 30.0, 8, "fps")
    with pytest.raises(ValueError, match="unknown frame strategy"):
        choose_indices(60, 30.0, 8, "random")


@pytest.mark.parametrize("reader", ["decord", "opencv"])
def test_select_frames_meta_and_content(reader):
    frames, meta = select_frames(SQUARE_MP4, max_frames=8, reader=reader)
    assert meta.reader == reader
    assert meta.selected_indices == (2, 8, 14, 20, 26, 31, 37, 43)
    assert meta.num_frames_total == 48 and meta.strategy == "uniform"
    assert meta.video_fps == 24.0 and meta.fps_used == 4.0
    assert [band_index(f) for f in frames] == list(meta.selected_indices)
    assert all(f.shape == (96, 128, 3) and f.dtype == np.uint8 for f in frames)


@pytest.fixture
def no_torchcodec(monkeypatch):
    """The choice among the other readers, as on a machine without TorchCodec or FFmpeg."""
    import vlm_bench.utils.readers as readers

    monkeypatch.setattr(readers, "torchcodec_available", lambda: False)


def test_auto_reads_a_short_clip_sequentially():
    _, meta = select_frames(SQUARE_MP4, max_frames=4)
    assert meta.reader == "opencv"  # 48 frames: nothing to skip by seeking


@pytest.fixture(scope="module")
def long_gop_clip(tmp_path_factory):
    """600 frames with a keyframe every 24: picks far apart are cheaper to reach by seeking."""
    from vlm_bench.utils.synthetic import indexed_frame, write_video

    path = tmp_path_factory.mktemp("seek") / "keyframes.mp4"
    base = np.full((64, 96, 3), 80, np.uint8)
    write_video(path, (indexed_frame(i, base) for i in range(600)), fps=24, options={"crf": "12", "g": "24", "bf": "2"})
    return path


@pytest.mark.parametrize("max_frames", [4, 8, 12])
def test_auto_seeks_when_picks_are_far_apart_and_gets_the_same_frames(long_gop_clip, max_frames, no_torchcodec):
    pytest.importorskip("av")
    frames, meta = select_frames(long_gop_clip, max_frames)
    assert meta.reader == "pyav"
    seq_frames, seq_meta = select_frames(long_gop_clip, max_frames, reader="opencv")
    assert meta.selected_indices == seq_meta.selected_indices and meta.num_frames_total == 600
    assert all(np.array_equal(a, b) for a, b in zip(frames, seq_frames))
    assert [band_index(f) for f in frames] == [i % 62 for i in meta.selected_indices]


def test_dense_picks_on_a_long_clip_stay_sequential(long_gop_clip, no_torchcodec):
    _, meta = select_frames(long_gop_clip, 64)  # 9 frames apart: every group of pictures is decoded anyway
    assert meta.reader == "opencv"


def test_without_pyav_decord_seeks_only_far_apart_picks(long_gop_clip, monkeypatch, no_torchcodec):
    import vlm_bench.utils.readers as readers

    monkeypatch.setattr(readers, "pyav_available", lambda: False)
    assert select_frames(long_gop_clip, 8)[1].reader == "opencv"  # 75 frames apart
    monkeypatch.setattr(readers, "DECORD_MIN_GAP", 50)
    frames, meta = select_frames(long_gop_clip, 8)
    assert meta.reader == "decord" and [band_index(f) for f in frames] == [i % 62 for i in meta.selected_indices]


def test_timestamps_that_do_not_map_to_frames_fall_back_to_a_sequential_read(long_gop_clip, monkeypatch, no_torchcodec):
    pytest.importorskip("av")
    import vlm_bench.utils.readers as readers

    def confused(self, pts, strict=True):
        raise readers._NotSeekable("timestamp between frames")

    monkeypatch.setattr(readers.PyAVReader, "_index_of", lambda self, pts, strict=True: 0 if not strict else confused(self, pts))
    frames, meta = select_frames(long_gop_clip, 8)
    assert meta.reader == "opencv" and [band_index(f) for f in frames] == [i % 62 for i in meta.selected_indices]


@pytest.mark.parametrize("video", [SQUARE_MP4, COLOUR_MP4], ids=["square", "colour"])
@pytest.mark.parametrize("strategy, kw", [("uniform", {}), ("stride", {"stride": 7}), ("fps", {"fps": 3.0})])
def test_decord_and_opencv_agree(video, strategy, kw):
    d_frames, d_meta = select_frames(video, 12, strategy, reader="decord", **kw)
    o_frames, o_meta = select_frames(video, 12, strategy, reader="opencv", **kw)
    assert d_meta.selected_indices == o_meta.selected_indices
    assert d_meta.num_frames_total == o_meta.num_frames_total
    for idx, a, b in zip(d_meta.selected_indices, d_frames, o_frames):
        assert band_index(a) == band_index(b) == idx
        # Both decode through FFmpeg; colour conversion may differ by a grey level or two.
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


@pytest.mark.smoke
def test_deterministic_across_calls():
    runs = [select_frames(COLOUR_MP4, 10, "uniform") for _ in range(3)]
    assert len({r[1] for r in runs}) == 1
    for frames, _ in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], frames))


def test_every_frame_of_every_reader_is_the_right_one():
    need_torchcodec()
    for reader in ("decord", "opencv", "torchcodec"):
        frames, meta = select_frames(COLOUR_MP4, 60, "stride", stride=1, reader=reader)
        assert [band_index(f) for f in frames] == list(range(60))


def test_truncated_file_count_is_corrected(make_video, tmp_path):
    """A cut-off mkv whose header still claims every frame: OpenCV's count is corrected to
    the frames that really decode, and both readers agree."""
    clip = make_video("full.mkv", n=60, fps=25)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    import cv2

    need_torchcodec()
    assert cv2.VideoCapture(str(cut)).get(cv2.CAP_PROP_FRAME_COUNT) == 60  # the header lies
    _, o_meta = select_frames(cut, 8, reader="opencv")
    _, d_meta = select_frames(cut, 8, reader="decord")
    _, t_meta = select_frames(cut, 8, reader="torchcodec")
    assert o_meta.num_frames_total == d_meta.num_frames_total == t_meta.num_frames_total < 60
    assert o_meta.selected_indices == d_meta.selected_indices == t_meta.selected_indices
    assert max(o_meta.selected_indices) < o_meta.num_frames_total


def test_missing_and_corrupt_videos_raise_media_error(tmp_path):
    with pytest.raises(MediaError, match="video file not found"):
        select_frames(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(MediaError, match="bad.mp4"):
        select_frames(bad)
    with pytest.raises(MediaError, match="OpenCV cannot open"):
        select_frames(bad, reader="opencv")


def test_read_image_frames(tmp_path):
    paths = []
    for i in range(5):
        img = np.full((20, 30, 3), i * 40, np.uint8)
        write_png(tmp_path / f"f{i}.png", img)
        paths.append(str(tmp_path / f"f{i}.png"))
    frames, meta = read_image_frames(paths, max_frames=8)
    assert meta.selected_indices == (0, 1, 2, 3, 4) and meta.strategy == "all" and meta.reader == "image"
    assert [int(f.mean()) for f in frames] == [0, 40, 80, 120, 160]
    frames, meta = read_image_frames(paths, max_frames=2)
    assert meta.strategy == "uniform" and meta.selected_indices == tuple(uniform_indices(5, 2))
    with pytest.raises(MediaError, match="frame file not found"):
        read_image_frames(paths[:1] + [str(tmp_path / "gone.png")], 8)
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(MediaError, match="cannot decode image"):
        read_image_frames([str(tmp_path / "junk.png")], 8)


def test_png_reads_after_decord_was_used():
    """decord's bundled zlib must not break OpenCV's PNG reader (see readers.py)."""
    import subprocess
    import sys

    from conftest import FIXTURES

    code = (
        "from vlm_bench.utils.video import select_frames, read_image_frames;"
        f"select_frames({str(SQUARE_MP4)!r}, 4, reader='decord');"
        f"f, m = read_image_frames([{str(FIXTURES / 'smoke/frames/dots_1.png')!r}], 4); print(f[0].shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(96, 96, 3)" in out.stdout
