"""The run's manifest: the resolved config, package versions, the git commit, argv and
times, so a number can be traced to what made it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping


TRACKED_PACKAGES = (
    "vlm-bench",
    "torch",
    "torchvision",
    "transformers",
    "bitsandbytes",
    "accelerate",
    "decord",
    "opencv-python-headless",
    "numpy",
    "PyYAML",
    "pytest",
    "ms-vlmeval",
    "diffusers",
    "av",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The commit of the vlm-bench checkout (None when not installed from a git checkout)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def build_manifest(run_config: Mapping[str, Any], started_at: str) -> dict[str, Any]:
    return {
        "config": run_config,
        "seed": run_config.get("seed"),
        "versions": package_versions(),
        "git": git_commit(),
        "argv": sys.argv,
        "started_at": started_at,
        "finished_at": utc_now(),
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
