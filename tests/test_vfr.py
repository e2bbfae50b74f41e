"""The fps strategy on variable-frame-rate video picks frames by presentation timestamp,
not by index and the average rate. The VFR file is written here with PyAV: 30 frames at
30 fps (the first second), then 10 frames 0.5 s apart."""

import fractions

import numpy as np
import pytest

from vlm_bench.utils.synthetic import band_index, indexed_frame
from vlm_bench.utils.sampling import fps_indices, usable_timestamps
from vlm_bench.utils.video import select_frames

PTS = [i / 30 for i in range(30)] + [1 + 0.5 * i for i in range(10)]  # seconds; the video lasts 6 s


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    av = pytest.importorskip("av")
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    base = np.full((64, 96, 3), 80, np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(PTS):
            frame = av.VideoFrame.from_ndarray(indexed_frame(i, base), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), fractions.Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def on_screen(t: float) -> int:
    return max(i for i, p in enumerate(PTS) if p <= t + 1e-9)


@pytest.mark.parametrize("reader", ["decord", "opencv"])
def test_fps_strategy_follows_presentation_time(vfr_video, reader):
    frames, meta = select_frames(vfr_video, 16, "fps", fps=1.0, reader=reader)
    wanted = [on_screen(k + 0.5) for k in range(6)]  # the frame shown at 0.5 s, 1.5 s, ... 5.5 s
    assert wanted == [15, 31, 33, 35, 37, 39]
    assert list(meta.selected_indices) == wanted
    assert [band_index(f) for f in frames] == wanted  # the decoded frames are those frames
    assert meta.num_frames_total == 40 and meta.fps_used == 1.0
    # by index and the average rate (40 frames / 6 s) every pick would land in the first 1.5 s
    assert max(fps_indices(40, meta.video_fps, 1.0, 16)) < 31


def test_constant_rate_picks_are_unchanged_by_timestamps():
    times = [i / 24 for i in range(48)]
    assert fps_indices(48, 24.0, 3.0, 12, times) == fps_indices(48, 24.0, 3.0, 12)
    assert fps_indices(48, 24.0, 3.0, 4, times) == fps_indices(48, 24.0, 3.0, 4)  # thinned alike


def test_timestamps_that_say_nothing_are_not_used():
    assert usable_timestamps([0.0, 0.0, 0.0], 3) is None
    assert usable_timestamps([0.0, 0.2, 0.1], 3) is None
    assert usable_timestamps([0.0, 0.1], 3) is None
    assert usable_timestamps([0.5, 0.6, 0.9], 3) == [0.5, 0.6, 0.9]


def test_the_seeking_reader_refuses_variable_frame_rate(vfr_video):
    """PyAV seeks by frame index only where timestamps are index x frame duration."""
    from vlm_bench.utils.readers import MediaError, open_reader

    with pytest.raises(MediaError, match="constant-frame-rate"):
        open_reader(str(vfr_video), "pyav")
