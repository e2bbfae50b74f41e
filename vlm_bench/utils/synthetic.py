"""Synthetic media for fixtures, tests and benchmarks (needs PyAV, in the ``test`` extra).

Each frame made by ``indexed_frame`` carries its own index as the grey level of a flat
band across the top (``index_level``), so a test can tell which frame a reader returned.
"""

from __future__ import annotations

import os
from typing import Iterable

import cv2
import numpy as np

BAND_ROWS = 16


def index_level(i: int) -> int:
    """Grey level of the top band in frame ``i``: distinct and 4 apart for i < 62."""
    return 8 + 4 * (i % 62)


def indexed_frame(i: int, base: np.ndarray) -> np.ndarray:
    img = base.copy()
    img[:BAND_ROWS] = index_level(i)
    return img


def band_index(frame: np.ndarray) -> int:
    """The index (mod 62) whose band level is nearest to this frame's band."""
    level = float(frame[2 : BAND_ROWS - 2].mean())
    return int(round((level - 8) / 4)) % 62


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> None:
    """Encode RGB frames with PyAV (H.264 by default, yuv420p)."""
    import av
    from fractions import Fraction

    frames = iter(frames)
    first = next(frames)
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = "yuv420p"
        # High enough quality that each flat band keeps its grey level within +-1.
        stream.options = options if options is not None else {"crf": "12", "preset": "medium", "tune": "stillimage"}
        for rgb in _chain(first, frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]):
    yield first
    yield from rest


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    if not cv2.imwrite(os.fspath(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def long_video_frames(n: int, size: tuple[int, int] = (720, 1280)):
    """Frames for a long benchmark clip: a textured field with a moving block, and the
    index band (mod 62) on top."""
    h, w = size
    rng = np.random.default_rng(0)
    field = cv2.resize(rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    for i in range(n):
        frame = field.copy()
        x = (i * 7) % (w - 120)
        frame[h // 2 - 60 : h // 2 + 60, x : x + 120] = (240, 240, 240)
        yield indexed_frame(i, frame)


def make_long_video(path: str | os.PathLike, minutes: float = 10, fps: int = 24, size: tuple[int, int] = (720, 1280)) -> None:
    """A ``minutes``-long H.264 clip (720p by default, a keyframe every 5 s) for the
    sampler benchmarks: ``python -m vlm_bench.utils.synthetic OUT.mp4 [minutes]``."""
    n = int(minutes * 60 * fps)
    write_video(path, long_video_frames(n, size), fps=fps,
                options={"crf": "28", "preset": "ultrafast", "g": str(5 * fps)})


if __name__ == "__main__":
    import sys

    make_long_video(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 10)
