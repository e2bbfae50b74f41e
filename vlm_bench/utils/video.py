"""The shared frame sampler: deterministic frame selection (``sampling``) read by the
reader chosen per file for speed (``readers``); frame folders and image files too.

Frames come back as RGB ``uint8`` arrays of shape (H, W, 3) at the file's own resolution;
resizing and tiling belong to the model's processor.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import cv2
import numpy as np

from vlm_bench.types import FrameSelection
from vlm_bench.utils.readers import (
    MediaError,
    OpenCVReader,
    _NotSeekable,
    _ShortStream,
    check_frame_bytes,
    fastest_reader,
    open_reader,
    reader_version,
)
from vlm_bench.utils.sampling import choose_indices, effective_rate, uniform_indices, usable_timestamps


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
    claimed = video.num_frames  # what the container says, before any frame is read
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
        fps_used=effective_rate(indices, num_frames, video.fps, timestamps),
        reader=video.name,
        reader_version=reader_version(video.name),
        video_fps=round(video.fps, 3) if video.fps else None,
        num_frames_claimed=int(claimed) if claimed and claimed > num_frames else None,
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
        fps_used=effective_rate(positions, n, fps),
        reader="image-folder",
        reader_version=reader_version("image-folder"),
        video_fps=fps,
    )


LAST_FRAME = "#last-frame"  # an entry of an item's frames: "<video>#last-frame" is that video's last frame


def video_frames(video: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame that decodes, in order, as RGB (a sequential OpenCV read)."""
    capture = cv2.VideoCapture(os.fspath(video))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def last_frame(video: str) -> np.ndarray:
    """The last frame that decodes, read through to the end (a seek to the container's
    claimed count returns the wrong frame on some files)."""
    if not os.path.isfile(video):
        raise MediaError(f"video file not found: {video!r}")
    last = None
    for last in video_frames(video):
        pass
    if last is None:
        raise MediaError(f"no frame decodes from {video!r}")
    return last


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB; MediaError when it is missing or does not decode."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaError(f"frame file not found: {path!r}")
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError(f"cannot decode image {path!r}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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
        if path.endswith(LAST_FRAME):  # a video's last frame, as a still
            frames.append(last_frame(path[: -len(LAST_FRAME)]))
            continue
        rgb = read_image(path)
        if not frames:
            check_frame_bytes(len(indices), rgb, max_bytes)
        frames.append(rgb)
    return frames, FrameSelection(
        selected_indices=tuple(indices),
        num_frames_total=len(paths),
        strategy=strategy,
        fps_used=None,
        reader="image",
        reader_version=reader_version("image"),
    )
