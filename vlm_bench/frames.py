"""An item's frames, as an engine takes them: decoded by the shared sampler, shared with
the next questions about the same video, read from the disk cache, or decoded ahead in a
background thread while the engine works. Plain Python; the evaluator owns one."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from vlm_bench.config import RunConfig, resolve_video
from vlm_bench.frame_cache import FrameCache, FrameMemory, resize_short_side
from vlm_bench.types import FrameSelection, Sample, VideoConfig, VideoInput
from vlm_bench.utils.video import read_frame_folder, read_image_frames, select_frames

DEFAULT_FRAME_FOLDER_FPS = 3.0  # MVBench's frame folders
MAX_AHEAD = 16  # prefetched items waiting for their turn, at most
PREFETCH_MIN_MS = 5.0  # decodes quicker than this are not worth a background thread

Frames = tuple[tuple[np.ndarray, ...], FrameSelection]


def decode_frames(sample: Sample, video: VideoConfig, max_bytes: int | None = None) -> Frames:
    """Decode the item's frames with the shared sampler (a video file, a GIF or a folder of
    frames), or read its image files; more than ``max_bytes`` of frames fail the item.
    With ``video.jpeg_quality`` each frame then goes through a JPEG file's round trip."""
    frames, selection = _decode(sample, video, sample.bound if video.bounds else None, max_bytes)
    if video.jpeg_quality is not None:
        frames = tuple(jpeg_round_trip(f, video.jpeg_quality) for f in frames)
    return frames, selection


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    """``frame`` as a reference sees it after saving it with Pillow as a ``.jpg`` at this
    quality (Pillow's other defaults: 4:2:0 chroma) and reading it back."""
    import io

    try:
        from PIL import Image
    except ImportError as exc:
        raise RuntimeError("video.jpeg_quality needs Pillow: pip install pillow") from exc
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.array(img.convert("RGB"))  # writable, as decoded frames are


def _decode(sample: Sample, video: VideoConfig, bound: tuple[float, float] | None, max_bytes: int | None) -> Frames:
    if sample.video is not None and os.path.isdir(sample.video):
        frames, selection = read_frame_folder(
            sample.video,
            video.max_frames,
            sample.frame_fps or DEFAULT_FRAME_FOLDER_FPS,
            video.strategy,
            video.stride,
            video.fps,
            bound,
            max_bytes,
        )
    elif sample.video is not None:
        frames, selection = select_frames(
            sample.video, video.max_frames, video.strategy, video.fps, video.stride, bound=bound, max_bytes=max_bytes
        )
    else:
        frames, selection = read_image_frames(list(sample.frames or ()), video.max_frames, max_bytes)
    return tuple(frames), selection


def load_media(sample: Sample, video: VideoConfig) -> VideoInput:
    """The item's frames, decoded now, as an engine takes them."""
    frames, selection = decode_frames(sample, video)
    return media_input(sample, frames, selection)


def media_input(sample: Sample, frames: tuple[np.ndarray, ...], selection: FrameSelection) -> VideoInput:
    return VideoInput(
        item_id=sample.id,
        frames=frames,
        selection=selection,
        source=sample.media_path,
        dataset=sample.dataset,
        reference=reference_image(sample),
        frame_labels=sample.frame_labels,
    )


def frames_key(sample: Sample, video: VideoConfig) -> Hashable | None:
    """What decides an item's frames within a run: its media files (path, size, change
    time) and the frame settings. None when a file is missing (the reader says so)."""
    paths = [sample.video] if sample.video is not None else list(sample.frames or ())
    try:
        files = tuple((p, st.st_size, st.st_mtime_ns) for p in paths for st in (os.stat(p),))
    except (OSError, TypeError, ValueError):
        return None
    return files, sample.video is not None, video, sample.bound, sample.frame_fps


def reference_image(sample: Sample):
    return read_image_frames([sample.reference], 1)[0][0] if sample.reference else None


class FrameSettings:
    """Each item's frame settings, resolved once per dataset and item overrides (model <
    dataset < item < command line)."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.datasets = {d.name: d for d in run.datasets}
        self._memo: dict[Hashable, VideoConfig] = {}

    def of(self, sample: Sample) -> VideoConfig:
        memo_key: Hashable | None = (sample.dataset, tuple(sample.video_overrides.items()))
        try:
            return self._memo[memo_key]
        except KeyError:
            pass
        except TypeError:  # an unhashable override value: resolved every time
            memo_key = None
        video = resolve_video(
            self.run.model.video,
            self.datasets[sample.dataset].video,
            sample.video_overrides,
            self.run.video_overrides,
            where=f"frame settings of item {sample.id!r} ({sample.source})",
        )
        if memo_key is not None:
            self._memo[memo_key] = video
        return video


class FrameSource:
    """Where an evaluator's items get their frames. ``memory_bytes`` of decoded frames are
    kept for the next questions about a video; ``cache`` (a folder) keeps resized frames
    across runs; ``max_item_bytes`` bounds one item's frames and how many are decoded ahead."""

    def __init__(self, memory_bytes: int, max_item_bytes: int, cache: FrameCache | None = None):
        self.memory = FrameMemory(memory_bytes)  # frames shared by questions about one video
        self.cache = cache
        self.max_item_bytes = max_item_bytes
        self.decodes = 0  # frame decodes (or disk-cache reads) done
        self.decode_ms: float | None = None  # their recent duration (moving average)
        self._item_bytes = 0  # the last decoded item's frames: how many more fit ahead
        self._media_ahead: OrderedDict[Hashable, Future] = OrderedDict()  # frames decoding in the background
        self._executor: ThreadPoolExecutor | None = None

    def media(self, sample: Sample, video: VideoConfig) -> VideoInput:
        return self.media_timed(sample, video)[0]

    def media_timed(self, sample: Sample, video: VideoConfig) -> tuple[VideoInput, float, float]:
        """(the item's frames, ms waited for them, ms their decode took): shared with an
        earlier question about the same video (same frame settings; no decode), decoded
        ahead by ``prefetch`` (the wait is what was left of it), from the frame cache, or now."""
        started = time.perf_counter()
        key = frames_key(sample, video)
        if key is None:
            frames, selection, decode_ms = self._decode(sample, video)
        elif (ahead := self._media_ahead.pop(key, None)) is not None:
            frames, selection, decode_ms = ahead.result()
        elif (shared := self.memory.get(key)) is not None:
            (frames, selection), decode_ms = shared, 0.0
        else:
            frames, selection, decode_ms = self._decode_and_keep(sample, video, key)
        media = media_input(sample, frames, selection)
        return media, (time.perf_counter() - started) * 1000, decode_ms

    def _decode_and_keep(self, sample: Sample, video: VideoConfig, key: Hashable) -> tuple[Any, FrameSelection, float]:
        frames, selection, took_ms = self._decode(sample, video)
        self.memory.put(key, (frames, selection), sum(f.nbytes for f in frames))
        return frames, selection, took_ms

    def _decode(self, sample: Sample, video: VideoConfig) -> tuple[Any, FrameSelection, float]:
        started = time.perf_counter()
        frames, selection = self._decode_or_read(sample, video)
        took_ms = (time.perf_counter() - started) * 1000
        self.decode_ms = took_ms if self.decode_ms is None else 0.8 * self.decode_ms + 0.2 * took_ms
        self._item_bytes = sum(f.nbytes for f in frames)
        return frames, selection, took_ms

    def _decode_or_read(self, sample: Sample, video: VideoConfig) -> Frames:
        self.decodes += 1
        if self.cache is None:
            return decode_frames(sample, video, self.max_item_bytes)
        try:
            key = self.cache.key(sample, video)
        except OSError:  # missing media: let the reader say so
            return decode_frames(sample, video, self.max_item_bytes)
        hit = self.cache.get(key)
        if hit is not None:
            return tuple(hit[0]), hit[1]
        frames, selection = decode_frames(sample, video, self.max_item_bytes)
        frames = tuple(resize_short_side(f, self.cache.side) for f in frames)
        self.cache.put(key, frames, selection)
        return frames, selection

    def prefetch(self, samples: Sequence[Sample], video_of: Callable[[Sample], VideoConfig | None]) -> None:
        """Start decoding these items' frames in a background thread while the engine
        works; items whose frames are already decoded, or on their way, are skipped, and so
        are those ``video_of`` gives no settings for. Only where it pays: once decodes are
        seen to take under ``PREFETCH_MIN_MS``, frames are decoded in turn (the thread's
        hand-off and its contention with the engine cost about what it would save)."""
        if self.decode_ms is not None and self.decode_ms < PREFETCH_MIN_MS:
            return
        for sample in samples:
            video = video_of(sample)
            if video is None:
                continue
            key = frames_key(sample, video)
            if key is None or key in self._media_ahead or key in self.memory:
                continue
            if self._item_bytes * (len(self._media_ahead) + 2) > self.max_item_bytes:
                break  # large items: the one running and those ahead stay within one item's bound
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlm-bench-prefetch")
            self._media_ahead[key] = self._executor.submit(self._decode_and_keep, sample, video, key)
            while len(self._media_ahead) > MAX_AHEAD:  # never consumed (its item ran elsewhere): let it go
                self._media_ahead.popitem(last=False)[1].cancel()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._media_ahead.clear()
        self.memory.clear()
