"""The shared frame sampler: deterministic frame selection, decord first, OpenCV fallback.

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

READERS = ("auto", "decord", "opencv")


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


class OpenCVReader:
    """Reads by sequential grab/retrieve: seeking with CAP_PROP_POS_FRAMES returns wrong
    frames on variable-frame-rate files, and CAP_PROP_FRAME_COUNT can overstate the length
    of a truncated file, so the count is corrected when the stream ends early."""

    name = "opencv"

    def __init__(self, path: str):
        self._path = path
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                raise MediaError(f"OpenCV cannot open video {path!r}")
            self.num_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        finally:
            cap.release()
        if self.num_frames <= 0:
            self.num_frames = self._count_frames()
        if self.num_frames <= 0:
            raise MediaError(f"OpenCV decodes no frames from video {path!r}")

    def _count_frames(self) -> int:
        cap = cv2.VideoCapture(self._path)
        count = 0
        while cap.grab():
            count += 1
        cap.release()
        return count

    def timestamps(self) -> list[float] | None:
        """Each frame's presentation time in seconds. OpenCV knows it only for the frame
        just grabbed, so this grabs (decodes) the whole video once."""
        cap = cv2.VideoCapture(self._path)
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
        cap = cv2.VideoCapture(self._path)
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
    video = open_reader(path, reader)
    try:
        timestamps = video.timestamps() if strategy == "fps" else None
        num_frames = video.num_frames
        indices = choose_indices(num_frames, video.fps, max_frames, strategy, fps, stride, bound, timestamps)
        try:
            frames = video.read(indices, max_bytes)
        except _ShortStream as short:
            # The container overstated its length; choose again over the frames that exist.
            num_frames = short.frames_read
            if num_frames < 1:
                raise MediaError(f"no frame of video {path!r} decodes")
            timestamps = usable_timestamps(timestamps, num_frames)
            indices = choose_indices(num_frames, video.fps, max_frames, strategy, fps, stride, bound, timestamps)
            frames = video.read(indices, max_bytes)
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
