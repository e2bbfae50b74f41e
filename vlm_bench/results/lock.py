"""Ownership of a results folder: one process at a time (a ``flock``), a stale holder
detected, and the checks that a folder can be written at all."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.results.manifest import utc_now
from vlm_bench.results.writer import ResultsDirError
from vlm_bench.utils.http import redact_argv


LOCK_FILE = ".vlm-bench.lock"  # held (flock) by the one process that owns the folder


def check_results_dir(root: str | os.PathLike) -> None:
    """Raise ResultsDirError when ``root`` cannot become a writable results folder (it is a
    file, lies below a file, or its nearest existing folder is not writable). Creates
    nothing, so it runs while settings are checked, before collection."""
    root = Path(root)
    for path in (root, *root.parents):
        if not path.exists():
            continue
        if not path.is_dir():
            where = "is a file" if path == root else f"lies below a file ({path})"
            raise ResultsDirError(f"results folder {root} {where}; choose another --results-dir")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ResultsDirError(f"results folder {root}: {path} is not writable; choose another --results-dir")
        return


def ensure_results_dir(root: str | os.PathLike) -> Path:
    """Create the results folder and prove it can be written (a probe file)."""
    root = Path(root)
    check_results_dir(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultsDirError(f"results folder {root} cannot be written: {exc.strerror or exc}; choose another --results-dir") from None
    return root


def describe_holder(holder: Mapping[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not written its name yet)"
    command = f": {holder['command']}" if holder.get("command") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started_at')}{command}"


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def _process_alive(holder: Mapping[str, Any]) -> bool:
    """Whether the holder may still run: a process of this host is checked; one of
    another host cannot be, so it counts as running."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return True


class RunLock:
    """Ownership of a results folder by one process: an exclusive ``flock`` on
    ``.vlm-bench.lock``, which also names the holder (pid, host, start, command). The lock
    dies with its process, so a file that names a holder but is not locked was left by a
    run that was killed or crashed: a stale lock, taken over and reported in ``stale``.
    Where the file system has no flock (some cluster mounts), the named holder's pid is
    checked instead (on its own host only). Released, the file is emptied, not removed
    (removing it would let two later runs lock two different files)."""

    def __init__(self, path: Path, fd: int, stale: dict[str, Any] | None):
        self.path, self._fd, self.stale = path, fd, stale

    @classmethod
    def acquire(cls, results_dir: str | os.PathLike, wait_for_name: float = 2.0) -> "RunLock":
        root = ensure_results_dir(results_dir)
        path = root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ResultsDirError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
        try:
            locked = _try_flock(fd)
            previous = _read_holder(path)
            if locked is False or (locked is None and previous and _process_alive(previous)):
                deadline = time.monotonic() + wait_for_name
                while locked is False and (previous is None or not _process_alive(previous)) and time.monotonic() < deadline:
                    time.sleep(0.05)  # the holder has just locked and is writing its name over a stale one
                    previous = _read_holder(path)
                hint = f"; if that run is gone, delete {path}" if locked is None else ""
                raise ResultsDirError(
                    f"{root} is in use by another vlm-bench run ({describe_holder(previous)}); "
                    f"wait for it to finish or choose another --results-dir{hint}"
                )
            me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now(), "command": " ".join(redact_argv(sys.argv))[:500]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, previous)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _try_flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: no flock on this file system."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise


def lock_holder(results_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The live process holding ``results_dir`` (its named holder), or None when free."""
    path = Path(results_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        locked = _try_flock(fd)
        holder = _read_holder(path)
        if locked is False:
            return holder or {}
        if locked is None and holder and _process_alive(holder):
            return holder
        return None
    finally:
        os.close(fd)
