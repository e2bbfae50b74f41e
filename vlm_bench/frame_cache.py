"""A disk cache of decoded, resized frames, keyed by the media's content and the frame
settings, bounded in size, and safe for several processes (writes go to a temporary
file and are renamed into place)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vlm_bench.types import FrameSelection, Sample, VideoConfig

CACHE_VERSION = 1
DEFAULT_SIDE = 448


def resize_short_side(frame: np.ndarray, side: int) -> np.ndarray:
    """Shrink so the shorter side is ``side`` (never enlarge); aspect ratio kept."""
    h, w = frame.shape[:2]
    if min(h, w) <= side:
        return frame
    scale = side / min(h, w)
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class FrameCache:
    def __init__(self, root: str | os.PathLike, max_bytes: int = 20 * 1024**3, side: int = DEFAULT_SIDE):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.side = side
        self.hits = self.misses = 0
        (self.root / "frames").mkdir(parents=True, exist_ok=True)
        (self.root / "hashes").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ keys

    def content_hash(self, path: str | os.PathLike) -> str:
        return content_hash(path, self.root / "hashes")

    def key(self, sample: Sample, video: VideoConfig) -> str:
        media = ([sample.video] if sample.video is not None else list(sample.frames or ())) + (
            [sample.reference] if sample.reference else []
        )
        parts = {
            "v": CACHE_VERSION,
            "media": [self.content_hash(m) for m in media],
            "kind": "video" if sample.video is not None else "frames",
            "video": asdict(video),
            "bound": sample.bound,
            "frame_fps": sample.frame_fps,
            "side": self.side,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    # ------------------------------------------------------------ entries

    def get(self, key: str) -> tuple[list[np.ndarray], FrameSelection] | None:
        path = self.root / "frames" / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                frames = [data[f"f{i}"] for i in range(meta["count"])]
        except (OSError, KeyError, ValueError):
            self.misses += 1
            return None
        try:
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:  # another process evicted it after we read it
            pass
        self.hits += 1
        sel = meta["selection"]
        sel["selected_indices"] = tuple(sel["selected_indices"])
        return frames, FrameSelection(**sel)

    def put(self, key: str, frames: Sequence[np.ndarray], selection: FrameSelection) -> None:
        meta = json.dumps({"count": len(frames), "selection": selection.as_dict()})
        fd, tmp = tempfile.mkstemp(dir=self.root / "frames", prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=np.array(meta), **{f"f{i}": f for i, f in enumerate(frames)})
        os.replace(tmp, self.root / "frames" / f"{key}.npz")
        self.evict()

    def evict(self) -> None:
        entries = []
        for path in (self.root / "frames").glob("*.npz"):
            try:
                st = path.stat()
            except FileNotFoundError:  # another worker evicted it
                continue
            entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
                total -= size
            except FileNotFoundError:
                pass

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.root / "frames").glob("*.npz"))


def content_hash(path: str | os.PathLike, memo_dir: str | os.PathLike) -> str:
    """sha256 of a file's bytes (or of a frame folder's files), remembered in ``memo_dir``
    per (path, size, mtime) so each file is read in full once."""
    path = Path(path)
    stat = path.stat()
    memo_dir = Path(memo_dir)
    memo_dir.mkdir(parents=True, exist_ok=True)
    memo = memo_dir / hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    if memo.exists():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    value = digest.hexdigest()
    atomic_write_bytes(memo, value.encode())
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers in other processes
    see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
