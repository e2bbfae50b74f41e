"""Which frames to take: the index rules of the shared sampler (InternVL's model card
``get_index`` for uniform picks, VLMEvalKit's interior points, a stride, or a rate by
presentation time). Pure
functions of frame counts and timestamps; no decoding."""

from __future__ import annotations

import bisect
import math
from typing import Sequence

import numpy as np

from vlm_bench.types import FRAME_STRATEGIES


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


def interior_indices(
    num_frames: int, count: int, video_fps: float | None = None, bound: tuple[float, float] | None = None
) -> list[int]:
    """``count`` evenly spaced interior points, first and last frame left out:
    ``int(i * n / (count + 1))`` for i = 1..count (VLMEvalKit's Video-MME; within
    ``bound``, in seconds, when given)."""
    if num_frames < 1:
        raise ValueError("video has no frames")
    start, end = 0, num_frames
    if bound is not None:
        fps = video_fps or 1.0
        start = max(0, min(num_frames - 1, round(bound[0] * fps)))
        end = max(start + 1, min(num_frames, round(bound[1] * fps) + 1))
    step = (end - start) / (count + 1)
    return [start + int(i * step) for i in range(1, count + 1)]


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
    if count > 2 * len(times):  # more instants than frames: work per frame, not per instant (fps 1e9 must not loop 1e9 times)
        return _centres(frames_with_an_instant(times, fps, count), max_frames)
    picked: list[int] = []
    for k in range(count):
        idx = min(max(bisect.bisect_right(times, (k + 0.5) / fps + 1e-6) - 1, 0), num_frames - 1)
        if not picked or picked[-1] != idx:
            picked.append(idx)
    return _centres(picked, max_frames)


def frames_with_an_instant(times: Sequence[float], fps: float, count: int) -> list[int]:
    """The frames on screen at one of the instants ``(k + 0.5) / fps``, k < ``count``:
    what ``fps_indices`` picks, found frame by frame (O(frames)) instead of instant by
    instant. Frame i is on screen from ``times[i]`` to ``times[i + 1]`` (the last to the
    end), compared with the same 1e-6 s tolerance."""
    picked = []
    for i, start in enumerate(times):
        first = max(0, math.ceil((start - 1e-6) * fps - 0.5))  # the first instant at or after the frame's start
        if first >= count:
            break
        if i + 1 == len(times) or (first + 0.5) / fps + 1e-6 < times[i + 1]:
            picked.append(i)
    return picked or [0]


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
    if strategy == "interior":
        return interior_indices(num_frames, max_frames, video_fps, bound)
    if strategy == "stride":
        if not stride or stride < 1:
            raise ValueError("frame strategy 'stride' needs stride >= 1 (set --stride or video.stride)")
        return stride_indices(num_frames, stride, max_frames)
    if strategy == "fps":
        if not fps or fps <= 0:
            raise ValueError("frame strategy 'fps' needs fps > 0 (set --fps or video.fps)")
        return fps_indices(num_frames, video_fps, fps, max_frames, timestamps)
    raise ValueError(f"unknown frame strategy {strategy!r}; choose one of {', '.join(FRAME_STRATEGIES)}")


def effective_rate(
    indices: Sequence[int], num_frames: int, video_fps: float | None, timestamps: Sequence[float] | None = None
) -> float | None:
    if timestamps is not None:
        return round(len(set(indices)) / _duration(_relative_times(timestamps, num_frames, video_fps), video_fps), 3)
    if not video_fps:
        return None
    return round(len(set(indices)) / (num_frames / video_fps), 3)
