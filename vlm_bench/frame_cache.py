"""Decoded frames kept for reuse: in memory for the questions of one run that share a
video (``FrameMemory``), and on disk across runs and processes (``FrameCache``: keyed by
the media's content and the frame settings, compressed, bounded in size, safe for several
processes since writes go to a temporary file and are renamed into place)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Hashable, Sequence

import cv2
import numpy as np

from vlm_bench.types import FrameSelection, Sample, VideoConfig

CACHE_VERSION = 2  # 2: entries are deflate-compressed
DEFAULT_SIDE = 448
LOW_WATER = 0.9  # eviction frees down to this share of the bound, so it runs once per 10% written
STALE_TEMP_SECONDS = 3600  # a writer's temporary file this old was left by a killed process


def resize_short_side(frame: np.ndarray, side: int) -> np.ndarray:
    """Shrink so the shorter side is ``side`` (never enlarge); aspect ratio kept."""
    h, w = frame.shape[:2]
    if min(h, w) <= side:
        return frame
    scale = side / min(h, w)
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class FrameMemory:
    """The most recently decoded frames, least recently used dropped first, bounded by
    bytes; shared by the threads of one process (the prefetch thread fills it)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (value, nbytes)
            self.bytes += nbytes
            while self.bytes > self.max_bytes:
                _, (_, size) = self._entries.popitem(last=False)
                self.bytes -= size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


class FrameCache:
    """Frames on disk, one compressed ``.npz`` per (media content, frame settings).

    The size bound is kept without listing the folder on every write: a process lists it
    once, then adds what it writes, and lists again (evicting the least recently used down
    to 90% of the bound) only when its running total passes the bound; so eviction costs
    O(1) per write, amortised. Other processes' writes are seen at the next listing: with
    k writers the folder may pass the bound by up to (k - 1) x 10% between listings."""

    def __init__(self, root: str | os.PathLike, max_bytes: int = 20 * 1024**3, side: int = DEFAULT_SIDE):
        self.root = Path(root)
        self.frames_dir = self.root / "frames"
        self.max_bytes = max_bytes
        self.side = side
        self.hits = self.misses = 0
        self._estimate: int | None = None  # bytes in the folder: last listing plus our writes since
        self.frames_dir.mkdir(parents=True, exist_ok=True)
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
            "video": video.as_dict(),
            "bound": sample.bound,
            "frame_fps": sample.frame_fps,
            "side": self.side,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    # ------------------------------------------------------------ entries

    def _path(self, key: str) -> Path:
        return self.frames_dir / f"{key}.npz"

    def get(self, key: str) -> tuple[list[np.ndarray], FrameSelection] | None:
        """The entry, or None. An unreadable entry (zero bytes, cut off, corrupt) is a miss
        and is removed, so this run writes it again."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                frames = [data[f"f{i}"] for i in range(meta["count"])]
                sel = dict(meta["selection"])
                sel["selected_indices"] = tuple(sel["selected_indices"])
                selection = FrameSelection(**sel)
        except FileNotFoundError:
            self.misses += 1
            return None
        except Exception:  # noqa: BLE001 - any damage (EOF, bad zip, bad JSON, missing array) is a miss
            self.misses += 1
            try:
                path.unlink()
            except OSError:
                pass
            return None
        try:
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:  # another process evicted it after we read it
            pass
        self.hits += 1
        return frames, selection

    def put(self, key: str, frames: Sequence[np.ndarray], selection: FrameSelection) -> None:
        meta = json.dumps({"count": len(frames), "selection": selection.as_dict()})
        fd, tmp = tempfile.mkstemp(dir=self.frames_dir, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                write_npz(fh, {"meta": np.array(meta), **{f"f{i}": f for i, f in enumerate(frames)}})
            size = os.path.getsize(tmp)
            os.replace(tmp, self._path(key))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        if self._estimate is None:
            self._estimate = self._list()[1]
        else:
            self._estimate += size
        if self._estimate > self.max_bytes:
            self.evict()

    def _list(self) -> tuple[list[tuple[float, int, str]], int]:
        """(mtime, size, name) of every entry, and their total. Other writers' temporary
        files (``.tmp-*``) are not entries; one left by a killed writer long ago is removed."""
        entries = []
        now = time.time()
        with os.scandir(self.frames_dir) as listing:
            for entry in listing:
                try:
                    st = entry.stat()
                except FileNotFoundError:  # evicted or renamed meanwhile
                    continue
                if entry.name.startswith("."):
                    if entry.name.startswith(".tmp-") and now - st.st_mtime > STALE_TEMP_SECONDS:
                        _unlink(entry.path)
                    continue
                if entry.name.endswith(".npz"):
                    entries.append((st.st_mtime, st.st_size, entry.name))
        return entries, sum(size for _, size, _ in entries)

    def evict(self) -> None:
        """Remove the least recently used entries until the folder holds at most 90% of
        the bound (all of it when the bound is below one entry)."""
        entries, total = self._list()
        if total > self.max_bytes:
            target = self.max_bytes * LOW_WATER
            for _, size, name in sorted(entries):
                if total <= target:
                    break
                if _unlink(self.frames_dir / name):
                    total -= size
        self._estimate = total

    def size_bytes(self) -> int:
        return self._list()[1]


def _unlink(path: str | os.PathLike) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:  # another process removed it first
        return False


def write_npz(fh: Any, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (``np.load`` reads it) deflated at level 1: frames shrink several
    times at a small fraction of the cost of numpy's own ``savez_compressed`` (level 6)."""
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def content_hash(path: str | os.PathLike, memo_dir: str | os.PathLike) -> str:
    """sha256 of a file's bytes (or of a frame folder's files), remembered in ``memo_dir``
    per (path, size, mtime) so each file is read in full once."""
    path = Path(path)
    stat = path.stat()
    memo_dir = Path(memo_dir)
    memo_dir.mkdir(parents=True, exist_ok=True)
    memo = memo_dir / hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    try:
        known = memo.read_text().strip()
    except OSError:
        known = ""
    if len(known) == 64:  # a damaged memo is recomputed
        return known
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
