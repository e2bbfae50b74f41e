"""The shared frame sampler: deterministic frame selection, and the reader chosen per file
for speed (a sequential OpenCV read, PyAV seeking from keyframes, or decord), all giving the
same frames.

Frames come back as RGB ``uint8`` arrays of shape (H, W, 3) at the file's own resolution;
resizing and tiling belong to the model's processor.
"""

from __future__ import annotations

import bisect
import importlib.util
import math
import os
from typing import Sequence

# cv2 must load before decord: decord loads its bundled zlib 1.2.3 into the global symbol
# scope, and an OpenCV loaded after it fails every PNG read ("bad parameters to zlib").
import cv2
import numpy as np

from vlm_bench.types import FRAME_STRATEGIES, FrameSelection

READERS = ("auto", "decord", "opencv", "pyav")
# Picks closer than this (in frames) are read sequentially: seeking skips whole groups of
# pictures, and encoders put keyframes further apart than this.
SEEK_MIN_GAP = 40
# Without PyAV, decord seeks, at several times the cost per decoded frame of a sequential
# read (measured on the 2-core reference machine): worth it for picks this far apart.
DECORD_MIN_GAP = 300


class MediaError(Exception):
    """An item's video or image cannot be read. Fails that item only."""


# ---------------------------------------------------------------- index selection (pure)


def uniform_indices(
    num_frames: int,
    num_segments: int,
    video_fps: float | None = None,
    bound: tuple[float, float] | None = None,
    first_idx: int = 0,
) -> list[int]:
    """Centre of each of ``num_segments`` equal segments, as the InternVL3 model card's
    ``get_index`` computes them (``max_frame = num_frames - 1``; ``bound`` in seconds)."""
    if num_frames < 1:
        raise ValueError("video has no frames")
    fps = video_fps or 1.0
    start, end = bound if bound is not None else (-100000, 100000)
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), num_frames - 1)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * i)) for i in range(num_segments)]


def _centres(candidates: Sequence[int], k: int) -> list[int]:
    """Keep ``k`` of ``candidates``: the one at the centre of each of ``k`` equal runs."""
    if len(candidates) <= k:
        return list(candidates)
    n = len(candidates)
    return [candidates[int((j + 0.5) * n / k)] for j in range(k)]


def stride_indices(num_frames: int, stride: int, max_frames: int) -> list[int]:
    """Every ``stride``-th frame from 0; more than ``max_frames`` are thinned evenly, so
    ``stride`` is the minimum spacing and the whole video stays covered."""
    return _centres(range(0, num_frames, stride), max_frames)


def fps_indices(
    num_frames: int, video_fps: float | None, fps: float, max_frames: int, timestamps: Sequence[float] | None = None
) -> list[int]:
    """One frame per 1/``fps`` seconds: the frame on screen at the centre of each
    interval, thinned evenly to ``max_frames``. With the frames' presentation timestamps
    (seconds) the pick is by time, so a variable-frame-rate video is sampled evenly in
    time; without them frame ``i`` is taken to show at ``i / video_fps``."""
    times = _relative_times(timestamps, num_frames, video_fps)
    count = max(1, int(_duration(times, video_fps) * fps + 1e-9))
    picked: list[int] = []
    for k in range(count):
        idx = min(max(bisect.bisect_right(times, (k + 0.5) / fps + 1e-6) - 1, 0), num_frames - 1)
        if not picked or picked[-1] != idx:
            picked.append(idx)
    return _centres(picked, max_frames)


def _relative_times(timestamps: Sequence[float] | None, num_frames: int, video_fps: float | None) -> list[float]:
    if timestamps is not None:
        return [float(t) - float(timestamps[0]) for t in timestamps[:num_frames]]
    if not video_fps:
        raise ValueError("frame strategy 'fps' needs the video's frame rate, which this file does not report")
    return [i / video_fps for i in range(num_frames)]


def _duration(times: Sequence[float], video_fps: float | None) -> float:
    """Seconds from the first frame's start to the last frame's end (the last frame lasts
    as long as the gap before it)."""
    last = times[-1] - times[-2] if len(times) > 1 else 1 / (video_fps or 1.0)
    return times[-1] + last


def usable_timestamps(timestamps: Sequence[float] | None, num_frames: int) -> list[float] | None:
    """The reader's presentation timestamps when they describe the frames (one per
    frame, never decreasing, spanning some time); else None and indices stand in."""
    if timestamps is None or len(timestamps) < num_frames or num_frames < 1:
        return None
    values = [float(t) for t in timestamps[:num_frames]]
    if any(math.isnan(t) for t in values) or any(b < a for a, b in zip(values, values[1:])) or (num_frames > 1 and values[-1] <= values[0]):
        return None
    return values


def choose_indices(
    num_frames: int,
    video_fps: float | None,
    max_frames: int,
    strategy: str,
    fps: float | None = None,
    stride: int | None = None,
    bound: tuple[float, float] | None = None,
    timestamps: Sequence[float] | None = None,
) -> list[int]:
    if strategy == "uniform":
        return uniform_indices(num_frames, max_frames, video_fps, bound)
    if strategy == "stride":
        if not stride or stride < 1:
            raise ValueError("frame strategy 'stride' needs stride >= 1 (set --stride or video.stride)")
        return stride_indices(num_frames, stride, max_frames)
    if strategy == "fps":
        if not fps or fps <= 0:
            raise ValueError("frame strategy 'fps' needs fps > 0 (set --fps or video.fps)")
        return fps_indices(num_frames, video_fps, fps, max_frames, timestamps)
    raise ValueError(f"unknown frame strategy {strategy!r}; choose one of {', '.join(FRAME_STRATEGIES)}")


# ---------------------------------------------------------------- readers


def decord_available() -> bool:
    return importlib.util.find_spec("decord") is not None


def pyav_available() -> bool:
    return importlib.util.find_spec("av") is not None


READ_CHUNK = 16  # frames decoded per call by a batch reader


class FrameBudgetError(MediaError):
    """An item's decoded frames would take more memory than allowed."""


def check_frame_bytes(count: int, frame: np.ndarray, max_bytes: int | None) -> None:
    """Refuse, before they are decoded, ``count`` frames the size of ``frame`` (RGB) that
    would take more than ``max_bytes``."""
    need = count * frame.shape[0] * frame.shape[1] * 3
    if max_bytes is not None and need > max_bytes:
        raise FrameBudgetError(
            f"{count} frames of {frame.shape[1]}x{frame.shape[0]} need {need / 1024**3:.1f} GB decoded, more than the "
            f"{max_bytes / 1024**3:.1f} GB an item may use (--item-frames-gb): lower --max-frames, or raise the limit "
            "where the machine has the memory"
        )


class _ShortStream(Exception):
    def __init__(self, frames_read: int):
        self.frames_read = frames_read


class DecordReader:
    name = "decord"

    def __init__(self, path: str):
        import decord

        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError
            raise MediaError(f"decord cannot open video {path!r}: {exc}") from exc
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps()) or None

    def timestamps(self) -> list[float] | None:
        """Each frame's presentation time in seconds (from the container's index)."""
        return usable_timestamps(self._vr.get_frame_timestamp(range(self.num_frames))[:, 0].tolist(), self.num_frames)

    def read(self, indices: Sequence[int], max_bytes: int | None = None) -> list[np.ndarray]:
        """In chunks, so decoding holds at most one chunk beside the frames kept; the
        first chunk tells the frame size, checked against ``max_bytes`` before the rest."""
        indices = list(indices)
        frames: list[np.ndarray] = []
        for start in range(0, len(indices), READ_CHUNK):
            batch = self._vr.get_batch(indices[start : start + READ_CHUNK]).asnumpy()
            if start == 0:
                check_frame_bytes(len(indices), batch[0], max_bytes)
            frames += [batch[i] for i in range(batch.shape[0])]
        return frames


class _NotSeekable(Exception):
    """PyAV cannot map this stream's timestamps to frame indices; read it sequentially."""


class PyAVReader:
    """Seeks to the keyframe before each pick and decodes forward from there, so on a long
    video with picks far apart it decodes a fraction of the frames a sequential read does.
    Frame ``i`` is the one whose timestamp is ``i`` frame durations after the first, so
    only constant-frame-rate streams qualify (duration x rate = frame count); a stream
    whose timestamps break that rule while reading raises ``_NotSeekable`` and the caller
    reads it sequentially instead. Frames are the same as the other readers'."""

    name = "pyav"

    def __init__(self, path: str):
        import av

        try:
            self._container = av.open(path)
        except Exception as exc:  # av.error.* for unreadable files
            raise MediaError(f"PyAV cannot open video {path!r}: {exc}") from exc
        try:
            stream = self._container.streams.video[0]
            rate, base, frames, duration = stream.base_rate, stream.time_base, stream.frames, stream.duration
            if not (rate and base and frames and duration and stream.average_rate):
                raise _NotSeekable(path)
            self._stream, self._rate, self._base = stream, rate, base
            self._start = stream.start_time or 0
            # constant frame rate: the average rate is the frame rate, the duration holds
            # every frame, and every packet's time falls on a frame's
            if abs(stream.average_rate / rate - 1) > 0.001 or abs(duration * base * rate - frames) > 1:
                raise _NotSeekable(path)
            keyframes = sorted(self._index_of(e.timestamp) for e in stream.index_entries if e.is_keyframe)
            for entry in stream.index_entries:
                self._index_of(entry.timestamp)
        except (IndexError, _NotSeekable):
            self.close()
            raise _NotSeekable(path) from None
        stream.thread_type = "AUTO"  # FFmpeg's frame threads, as OpenCV's FFmpeg backend uses
        self.num_frames = int(frames)
        self.fps = float(rate)
        self.keyframes = keyframes or [0]  # in decode order: near enough to plan seeks

    def close(self) -> None:
        self._container.close()

    def _index_of(self, pts: int, strict: bool = True) -> int:
        exact = (pts - self._start) * self._base * self._rate
        index = round(exact)
        if strict and abs(exact - index) > 0.25:
            raise _NotSeekable(f"timestamp {pts} is between frames")
        return int(index)

    def timestamps(self) -> list[float] | None:
        return [i / self.fps for i in range(self.num_frames)]

    def decoded_frames(self, indices: Sequence[int]) -> int:
        """Frames ``read`` decodes for these picks: forward within a group of pictures,
        from its keyframe after a seek (an estimate: keyframes are known in decode order)."""
        total, pos = 0, -1
        for idx in sorted(set(indices)):
            key = self.keyframes[max(bisect.bisect_right(self.keyframes, idx) - 1, 0)]
            total += idx - pos if key <= pos else idx - key + 1 + SEEK_COST
            pos = idx
        return total

    def read(self, indices: Sequence[int], max_bytes: int | None = None) -> list[np.ndarray]:
        wanted = sorted(set(indices))
        by_index: dict[int, np.ndarray] = {}
        pos, decoded = -1, None
        try:
            for idx in wanted:
                key = self.keyframes[max(bisect.bisect_right(self.keyframes, idx) - 1, 0)]
                if decoded is None or key > pos:
                    target = self._start + int(idx / self._rate / self._base)
                    self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
                    decoded = self._container.decode(self._stream)
                for frame in decoded:
                    pos = self._index_of(frame.pts)
                    if pos == idx:
                        break
                    if pos > idx:
                        raise _NotSeekable(f"frame {idx} has no timestamp of its own")
                else:
                    raise _NotSeekable(f"frame {idx} is past the end")
                rgb = frame.to_ndarray(format="rgb24")
                if not by_index:
                    check_frame_bytes(len(indices), rgb, max_bytes)
                by_index[idx] = rgb
        finally:
            self.close()
        return [by_index[i] for i in indices]


SEEK_COST = 8  # a seek and the decoder's restart, in decoded frames (measured)


class OpenCVReader:
    """Reads by sequential grab/retrieve: seeking with CAP_PROP_POS_FRAMES returns wrong
    frames on variable-frame-rate files, and CAP_PROP_FRAME_COUNT can overstate the length
    of a truncated file, so the count is corrected when the stream ends early. The capture
    opened to read the length serves the first read."""

    name = "opencv"

    def __init__(self, path: str):
        self._path = path
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            cap.release()
            raise MediaError(f"OpenCV cannot open video {path!r}")
        self.num_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        self._cap: cv2.VideoCapture | None = cap
        if self.num_frames <= 0:
            self.num_frames = self._count_frames()
        if self.num_frames <= 0:
            raise MediaError(f"OpenCV decodes no frames from video {path!r}")

    def _capture(self) -> cv2.VideoCapture:
        cap, self._cap = self._cap, None
        return cap if cap is not None else cv2.VideoCapture(self._path)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _count_frames(self) -> int:
        cap = self._capture()
        count = 0
        while cap.grab():
            count += 1
        cap.release()
        return count

    def timestamps(self) -> list[float] | None:
        """Each frame's presentation time in seconds. OpenCV knows it only for the frame
        just grabbed, so this grabs (decodes) the whole video once."""
        cap = self._capture()
        times = []
        try:
            while cap.grab():
                times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        finally:
            cap.release()
        if 0 < len(times) < self.num_frames:
            self.num_frames = len(times)  # the container overstated its length
        return usable_timestamps(times, self.num_frames)

    def read(self, indices: Sequence[int], max_bytes: int | None = None) -> list[np.ndarray]:
        wanted = sorted(set(indices))
        by_index: dict[int, np.ndarray] = {}
        cap = self._capture()
        try:
            pos = 0
            for idx in wanted:
                while pos <= idx:
                    if not cap.grab():
                        raise _ShortStream(pos)
                    pos += 1
                ok, bgr = cap.retrieve()
                if not ok:
                    raise _ShortStream(pos - 1)
                if not by_index:
                    check_frame_bytes(len(indices), bgr, max_bytes)
                by_index[idx] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        return [by_index[i] for i in indices]


def open_reader(path: str, reader: str = "auto"):
    if reader not in READERS:
        raise ValueError(f"unknown video reader {reader!r}; choose one of {', '.join(READERS)}")
    if reader == "decord" and not decord_available():
        raise RuntimeError("decord not installed: pip install 'vlm-bench[decord]' (or use reader='opencv')")
    if reader == "pyav":
        if not pyav_available():
            raise RuntimeError("PyAV not installed: pip install av (or use reader='opencv')")
        try:
            return PyAVReader(path)
        except _NotSeekable:
            raise MediaError(f"PyAV reads only constant-frame-rate video by frame index, and {path!r} is not; "
                             "use reader='opencv'") from None
    decord_error = None
    if reader in ("auto", "decord") and decord_available():
        try:
            return DecordReader(path)
        except MediaError as exc:
            if reader == "decord":
                raise
            decord_error = exc  # some containers decord rejects still decode through OpenCV
    try:
        return OpenCVReader(path)
    except MediaError as exc:
        if decord_error is None:
            raise
        raise MediaError(f"corrupt or unsupported video {path!r}: {decord_error}; {exc}") from exc


def fastest_reader(
    path: str,
    max_frames: int,
    strategy: str,
    fps: float | None,
    stride: int | None,
    bound: tuple[float, float] | None,
):
    """The reader that decodes this file's picks fastest, from what the benchmarks
    (tests/benchmarks/test_bench_readers.py) measured: a sequential OpenCV read, unless the
    picks lie far apart (more than ``SEEK_MIN_GAP`` frames on average), where PyAV seeking
    from keyframes decodes fewer frames (or, without PyAV, decord, beyond
    ``DECORD_MIN_GAP``). The ``fps`` strategy needs every frame's timestamp, which decord
    reads from the container's index and OpenCV only by decoding everything: decord first."""
    if strategy == "fps" and decord_available():
        return open_reader(path, "auto")
    try:
        sequential = OpenCVReader(path)
    except MediaError:
        return open_reader(path, "auto")  # decord opens some containers OpenCV cannot
    try:
        picks = choose_indices(sequential.num_frames, sequential.fps, max_frames, strategy, fps, stride, bound)
    except ValueError:
        return sequential  # select_frames reports it
    span = max(picks) + 1
    if span <= SEEK_MIN_GAP * len(set(picks)):
        return sequential
    if pyav_available():
        try:
            seeking = PyAVReader(path)
        except (MediaError, _NotSeekable):
            return sequential
        if seeking.num_frames == sequential.num_frames and seeking.decoded_frames(picks) < span:
            sequential.close()
            return seeking
        seeking.close()
    elif decord_available() and span > DECORD_MIN_GAP * len(set(picks)):
        try:
            seeking = DecordReader(path)
        except MediaError:
            return sequential
        sequential.close()
        return seeking
    return sequential


# ---------------------------------------------------------------- public API


def select_frames(
    video_path: str | os.PathLike,
    max_frames: int = 32,
    strategy: str = "uniform",
    fps: float | None = None,
    stride: int | None = None,
    *,
    bound: tuple[float, float] | None = None,
    reader: str = "auto",
    max_bytes: int | None = None,
) -> tuple[list[np.ndarray], FrameSelection]:
    """Decode the frames chosen by ``strategy``; same file and settings, same frames.
    The ``fps`` strategy picks by presentation timestamp (variable frame rates).

    Returns ``(frames, meta)``; ``meta`` records the indices, the true frame count, the
    strategy, the effective sampling rate and the reader that ran. Raises ``MediaError``
    for a missing, unreadable or corrupt file, and ``FrameBudgetError`` when the frames
    would take more than ``max_bytes``."""
    path = os.fspath(video_path)
    if max_frames < 1:
        raise ValueError("max_frames must be >= 1")
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {path!r}")
    if reader == "auto":
        video = fastest_reader(path, max_frames, strategy, fps, stride, bound)
    else:
        video = open_reader(path, reader)
    picking = (max_frames, strategy, fps, stride, bound, max_bytes)
    try:
        try:
            frames, indices, num_frames, timestamps = _read_picks(video, path, *picking)
        except _NotSeekable:  # PyAV met a timestamp between frames: read sequentially instead
            video = OpenCVReader(path)
            frames, indices, num_frames, timestamps = _read_picks(video, path, *picking)
    except (MediaError, ValueError):
        raise
    except Exception as exc:
        raise MediaError(f"cannot decode video {path!r} with {video.name}: {exc}") from exc
    return frames, FrameSelection(
        selected_indices=tuple(int(i) for i in indices),
        num_frames_total=int(num_frames),
        strategy=strategy,
        fps_used=_effective_rate(indices, num_frames, video.fps, timestamps),
        reader=video.name,
        video_fps=round(video.fps, 3) if video.fps else None,
    )


def _read_picks(
    video,
    path: str,
    max_frames: int,
    strategy: str,
    fps: float | None,
    stride: int | None,
    bound: tuple[float, float] | None,
    max_bytes: int | None,
) -> tuple[list[np.ndarray], list[int], int, list[float] | None]:
    """One reader's picks: (frames, indices, frame count, timestamps)."""
    timestamps = video.timestamps() if strategy == "fps" else None
    num_frames = video.num_frames
    indices = choose_indices(num_frames, video.fps, max_frames, strategy, fps, stride, bound, timestamps)
    try:
        return video.read(indices, max_bytes), indices, num_frames, timestamps
    except _ShortStream as short:
        # The container overstated its length; choose again over the frames that exist.
        num_frames = short.frames_read
        if num_frames < 1:
            raise MediaError(f"no frame of video {path!r} decodes")
        timestamps = usable_timestamps(timestamps, num_frames)
        indices = choose_indices(num_frames, video.fps, max_frames, strategy, fps, stride, bound, timestamps)
        return video.read(indices, max_bytes), indices, num_frames, timestamps


def _effective_rate(
    indices: Sequence[int], num_frames: int, video_fps: float | None, timestamps: Sequence[float] | None = None
) -> float | None:
    if timestamps is not None:
        return round(len(set(indices)) / _duration(_relative_times(timestamps, num_frames, video_fps), video_fps), 3)
    if not video_fps:
        return None
    return round(len(set(indices)) / (num_frames / video_fps), 3)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def read_frame_folder(
    folder: str | os.PathLike,
    max_frames: int,
    fps: float,
    strategy: str = "uniform",
    stride: int | None = None,
    sample_fps: float | None = None,
    bound: tuple[float, float] | None = None,
    max_bytes: int | None = None,
) -> tuple[list[np.ndarray], FrameSelection]:
    """A video stored as numbered image files at ``fps`` frames per second (MVBench's TVQA
    frames). Uniform picks use MVBench's rule for frame folders (files numbered from 1);
    ``selected_indices`` are positions in the sorted file list."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise MediaError(f"frame folder not found: {folder!r}")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise MediaError(f"frame folder {folder!r} holds no images")
    n = len(files)
    if strategy == "uniform":
        positions = [i - 1 for i in uniform_indices(n + 1, max_frames, fps, bound, first_idx=1)]
    else:
        positions = choose_indices(n, fps, max_frames, strategy, sample_fps, stride, bound)
    frames, _ = read_image_frames([os.path.join(folder, files[i]) for i in positions], len(positions), max_bytes)
    return frames, FrameSelection(
        selected_indices=tuple(positions),
        num_frames_total=n,
        strategy=strategy,
        fps_used=_effective_rate(positions, n, fps),
        reader="image-folder",
        video_fps=fps,
    )


def read_image_frames(paths: Sequence[str], max_frames: int, max_bytes: int | None = None) -> tuple[list[np.ndarray], FrameSelection]:
    """Frames given as image files (an image question is one frame). More than
    ``max_frames`` images are thinned with the uniform rule."""
    if not paths:
        raise MediaError("item lists no frames")
    if len(paths) > max_frames:
        indices = uniform_indices(len(paths), max_frames)
        strategy = "uniform"
    else:
        indices = list(range(len(paths)))
        strategy = "all"
    frames = []
    for i in indices:
        path = paths[i]
        if not os.path.isfile(path):
            raise MediaError(f"frame file not found: {path!r}")
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise MediaError(f"cannot decode image {path!r}")
        if not frames:
            check_frame_bytes(len(indices), bgr, max_bytes)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return frames, FrameSelection(
        selected_indices=tuple(indices),
        num_frames_total=len(paths),
        strategy=strategy,
        fps_used=None,
        reader="image",
    )
