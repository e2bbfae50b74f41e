"""The video readers behind the shared sampler (a sequential OpenCV read, PyAV seeking from
keyframes, decord, TorchCodec), all giving the same frames, and the choice of the fastest
one per file. Frames come back as RGB ``uint8`` arrays of shape (H, W, 3)."""

from __future__ import annotations

import bisect
import functools
import importlib
import importlib.util
import os
from typing import Sequence

# cv2 must load before decord: decord loads its bundled zlib 1.2.3 into the global symbol
# scope, and an OpenCV loaded after it fails every PNG read ("bad parameters to zlib").
import cv2
import numpy as np

from vlm_bench.utils.sampling import choose_indices, usable_timestamps


READERS = ("auto", "decord", "opencv", "pyav", "torchcodec")


# Picks closer than this (in frames) are read sequentially: seeking skips whole groups of
# pictures, and encoders put keyframes further apart than this.
SEEK_MIN_GAP = 40


# Without PyAV, decord seeks, at several times the cost per decoded frame of a sequential
# read (measured on the 2-core reference machine): worth it for picks this far apart.
DECORD_MIN_GAP = 300


class MediaError(Exception):
    """An item's video or image cannot be read. Fails that item only."""


def decord_available() -> bool:
    return importlib.util.find_spec("decord") is not None


def pyav_available() -> bool:
    return importlib.util.find_spec("av") is not None


def torchcodec_available() -> bool:
    """Installed, and its FFmpeg libraries load (TorchCodec links the system's FFmpeg 4-8)."""
    return importlib.util.find_spec("torchcodec") is not None and _torchcodec_error() is None


@functools.lru_cache(maxsize=1)
def _torchcodec_error() -> str | None:
    try:
        from torchcodec import _core

        _core.get_ffmpeg_library_versions()
    except Exception as exc:  # ImportError, or RuntimeError/OSError when FFmpeg's libraries are missing
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@functools.lru_cache(maxsize=None)
def reader_version(name: str) -> str | None:
    """The version of the library behind a reader, for the record."""
    module = {"opencv": "cv2", "image": "cv2", "image-folder": "cv2", "pyav": "av"}.get(name, name)
    try:
        return str(importlib.import_module(module).__version__)
    except (ImportError, AttributeError):
        return None


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


def torchcodec_threads() -> int:
    """FFmpeg threads per TorchCodec decoder: ``VLM_BENCH_TORCHCODEC_THREADS``, else 1.
    FFmpeg's own choice (0, a thread per core) was slower for these reads on the 2-core
    reference machine (tests/benchmarks/test_bench_readers.py prints both), and the look-ahead
    already decodes one item while the engine runs another."""
    value = os.environ.get("VLM_BENCH_TORCHCODEC_THREADS", "1")
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"VLM_BENCH_TORCHCODEC_THREADS must be a whole number >= 0, not {value!r}") from None
    if threads < 0:
        raise ValueError(f"VLM_BENCH_TORCHCODEC_THREADS must be >= 0 (0: FFmpeg chooses), not {threads}")
    return threads


class TorchCodecReader:
    """TorchCodec's decoder in exact seek mode: it scans the file's packets once, so frame
    ``i`` is the ``i``-th in presentation order (as decord's and the sequential readers'),
    on variable-frame-rate files too, and each pick is found by its presentation time."""

    name = "torchcodec"

    def __init__(self, path: str, threads: int | None = None):
        error = _torchcodec_error()
        if error is not None:
            raise RuntimeError(f"TorchCodec cannot load FFmpeg ({error}): install FFmpeg 4-8 "
                               "(Debian: apt-get install ffmpeg) or use reader='opencv'")
        from torchcodec.decoders import VideoDecoder

        try:
            self._decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact",
                                         num_ffmpeg_threads=torchcodec_threads() if threads is None else threads)
            meta = self._decoder.metadata
        except (RuntimeError, ValueError) as exc:
            raise MediaError(f"TorchCodec cannot open video {path!r}: {exc}") from exc
        self.num_frames = int(meta.num_frames or 0)
        if self.num_frames <= 0:
            raise MediaError(f"TorchCodec decodes no frames from video {path!r}")
        self.fps = float(meta.average_fps) if meta.average_fps else None

    def timestamps(self) -> list[float] | None:
        """Each frame's presentation time in seconds. TorchCodec keeps them from its scan
        but gives them only with frames, so this decodes the video once, a chunk at a time."""
        times: list[float] = []
        for start in range(0, self.num_frames, READ_CHUNK):
            batch = self._decoder.get_frames_in_range(start, min(start + READ_CHUNK, self.num_frames))
            times += batch.pts_seconds.tolist()
        return usable_timestamps(times, self.num_frames)

    def read(self, indices: Sequence[int], max_bytes: int | None = None) -> list[np.ndarray]:
        wanted = sorted(set(indices))
        by_index: dict[int, np.ndarray] = {}
        for start in range(0, len(wanted), READ_CHUNK):
            chunk = wanted[start : start + READ_CHUNK]
            batch = self._decoder.get_frames_at(chunk).data.numpy()
            if start == 0:
                check_frame_bytes(len(indices), batch[0], max_bytes)
            by_index.update((idx, batch[k]) for k, idx in enumerate(chunk))
        return [by_index[i] for i in indices]


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
    if reader == "torchcodec":
        if importlib.util.find_spec("torchcodec") is None:
            raise RuntimeError("TorchCodec not installed: pip install 'vlm-bench[torchcodec]' (or use reader='opencv')")
        return TorchCodecReader(path)
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
    picks lie far apart (more than ``SEEK_MIN_GAP`` frames on average), where seeking from
    keyframes decodes fewer frames: TorchCodec where it is installed and FFmpeg's libraries
    load (the fastest seeker measured), else PyAV (or, without PyAV, decord, beyond
    ``DECORD_MIN_GAP``). The ``fps`` strategy needs every frame's timestamp, which decord
    reads from the container's index and the others only by decoding everything: decord first."""
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
    if torchcodec_available():
        try:
            seeking = TorchCodecReader(path)
        except MediaError:
            seeking = None  # a container TorchCodec rejects may still seek through PyAV
        if seeking is not None and seeking.num_frames == sequential.num_frames:
            sequential.close()
            return seeking
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
